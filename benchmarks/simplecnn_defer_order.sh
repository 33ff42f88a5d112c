#!/usr/bin/env bash
# #17 dist.defer_update, simplecnn 4 hosts 1 Gbit/s: is the tuned default's gap to the
# same settings untuned (ring for the 1 MiB buckets, MPI for the small one) the row
# order?  Untuned first, tuned, then both again (spelled differently), REPEATS times
# (root; run under /work/bin/quiet holding the cluster lock):
#   benchmarks/simplecnn_defer_order.sh OUTDIR [REPEATS]
set -euo pipefail
cd "$(dirname "$0")/.."
for rep in $(seq 1 "${2:-2}"); do
    .venv/bin/dtnn bench scaling --out "$1/rep$rep" --frameworks dtnn \
        --models simplecnn --hosts 4 --links 1gbit --modes none overlap --steps 80 \
        --compress 'none|tune=false,bucket_mb=1' 'none' \
                   'none|tune=false,bucket_mb=1,progress=true' 'none|progress=true'
done
