#!/usr/bin/env bash
# #17 uncompressed simplecnn, 4 hosts at 1 Gbit/s (target: the exchange adds at most
# 1/0.9 of the bandwidth-optimal allreduce): the deferred update (dist.defer_update:
# the exchange overlaps the next step's forward) against the synchronous step, for the
# tuned default, the forced ring with 1 MiB buckets and 1 MiB buckets with the
# algorithm by size (ring for the dense layer's bucket, MPI's recursive doubling for
# the first conv's 1.3 KB), REPEATS times in one window
# (the tuner's pick applies to the big buckets, small ones go by size)
# (root; run under /work/bin/quiet holding the cluster lock):
#   benchmarks/simplecnn_defer.sh OUTDIR [REPEATS] [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1
for rep in $(seq 1 "${2:-2}"); do
    .venv/bin/dtnn bench scaling --out "$out/rep$rep" --frameworks dtnn \
        --models simplecnn --hosts 4 --links 1gbit --modes none overlap --steps "${3:-80}" \
        --compress 'none|defer_update=false' 'none|defer_update=true' \
                   'none|tune=false,algorithm=ring,bucket_mb=1,defer_update=false' \
                   'none|tune=false,algorithm=ring,bucket_mb=1,defer_update=true' \
                   'none|tune=false,bucket_mb=1,defer_update=false' \
                   'none|tune=false,bucket_mb=1,defer_update=true'
done
