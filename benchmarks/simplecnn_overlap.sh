#!/usr/bin/env bash
# #17 uncompressed simplecnn, 4 hosts at 1 Gbit/s: can the exchange overlap the first
# conv's backward? Inline (progress only at the backward hooks) against the exchange
# thread (progress while the conv computes) and MPICH's own progress thread, in one
# window (root; run under /work/bin/quiet holding the cluster lock):
#   benchmarks/simplecnn_overlap.sh OUTDIR
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1
.venv/bin/dtnn bench scaling --out "$out/inline_thread" \
    --models simplecnn --hosts 4 --links 1gbit --modes none overlap --steps 40 \
    --compress none 'none|tune=false,algorithm=ring,bucket_mb=1' \
               'none|tune=false,algorithm=ring,bucket_mb=1,comm_thread=true' \
               'none|tune=false,algorithm=mpi,bucket_mb=1' \
               'none|tune=false,algorithm=mpi,bucket_mb=1,comm_thread=true'
MPIR_CVAR_ASYNC_PROGRESS=1 .venv/bin/dtnn bench scaling --out "$out/mpich_async" \
    --models simplecnn --hosts 4 --links 1gbit --modes none overlap --steps 40 \
    --compress 'none|tune=false,algorithm=mpi,bucket_mb=1' \
               'none|tune=false,algorithm=ring,bucket_mb=1'
