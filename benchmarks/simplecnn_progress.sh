#!/usr/bin/env bash
# #17 uncompressed simplecnn, 4 hosts at 1 Gbit/s (target: the exchange adds at most
# 1/0.9 of the bandwidth-optimal allreduce): the joint (algorithm, bucket plan) tuner
# and the progress points inside the first conv's backward (dist.progress_parts=4)
# against the same without them (progress_parts=1), twice in one window
# (root; run under /work/bin/quiet holding the cluster lock):
#   benchmarks/simplecnn_progress.sh OUTDIR [REPEATS]
set -euo pipefail
# dist.progress_parts was removed after these runs (no gain, #17 "The deferred update"
# in benchmarks/results/scaling.md): rerun at a commit before 2026-12-07 19:30 UTC
cd "$(dirname "$0")/.."
out=$1
for rep in $(seq 1 "${2:-2}"); do
    .venv/bin/dtnn bench scaling --out "$out/rep$rep" --frameworks dtnn \
        --models simplecnn --hosts 4 --links 1gbit --modes none overlap --steps 80 \
        --compress 'none|progress_parts=4' 'none|progress_parts=1' \
                   'none|tune=false,algorithm=ring,bucket_mb=1,progress_parts=4' \
                   'none|tune=false,algorithm=ring,bucket_mb=1,progress_parts=1'
done
