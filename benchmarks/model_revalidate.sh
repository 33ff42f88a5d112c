#!/usr/bin/env bash
# #17 cost model: re-measure the validation rows (inline exchange) with today's exchange,
# on the simulated cluster (root; each part under /work/bin/quiet holding the cluster lock):
#   benchmarks/model_revalidate.sh OUTDIR [c1gbit|flat|2x2]...
# c1gbit: vgg11_bn w0.5, 2 and 4 hosts at 1 Gbit/s, uncompressed + 7 compressors
# flat:   uncompressed vgg11_bn 2/4 hosts 100 Mbit/s, simplecnn 2/4 hosts 100 Mbit/s + 1 Gbit/s
# 2x2:    vgg11_bn w0.5, 2 hosts x 2 ranks at 100 Mbit/s: tuned, MPI, ring, hier
# sparse: vgg11_bn w0.5, 2 and 4 hosts at 1 Gbit/s, top-k on SparCML and gtopk (forced:
#         the tuner picks SparCML in some runs only)
# A cell already in OUTDIR is skipped (dtnn bench scaling resumes), so a part cut short
# by a time limit continues where it stopped.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1; shift
for what in "$@"; do
case $what in
c1gbit)
    .venv/bin/dtnn bench scaling --out "$out/scaling" --ddp \
        --models vgg11_bn:width=0.5 --hosts 2 4 --links 1gbit --modes none overlap \
        --compress none int8 qsgd:bits=8 terngrad sign topk:ratio=0.01 randomk:ratio=0.01 \
                   powersgd:rank=2 --steps 6 --warmup 2 ;;
flat)
    .venv/bin/dtnn bench scaling --out "$out/scaling" --ddp \
        --models vgg11_bn:width=0.5 --hosts 2 4 --links 100mbit --compress none \
        --modes none overlap
    .venv/bin/dtnn bench scaling --out "$out/scaling" --ddp \
        --models simplecnn --hosts 2 4 --links 100mbit 1gbit --compress none \
        --modes none overlap ;;
2x2)
    .venv/bin/dtnn bench scaling --out "$out/scaling_2x2" --ddp \
        --models vgg11_bn:width=0.5 --hosts 2 --ranks-per-host 2 --links 100mbit \
        --compress none 'none|algorithm=mpi,tune=false' 'none|algorithm=ring,tune=false' \
                   'none|algorithm=hier,tune=false' --modes none overlap --steps 6 --warmup 2 ;;
sparse)
    .venv/bin/dtnn bench scaling --out "$out/scaling_sparse" --ddp \
        --models vgg11_bn:width=0.5 --hosts 2 4 --links 1gbit --modes none overlap \
        --compress 'topk:ratio=0.01|collective=sparse,tune=false' \
                   'topk:ratio=0.01|collective=gtopk,tune=false' --steps 6 --warmup 2 ;;
esac
done
