#!/usr/bin/env bash
# #17 cost model: timeline of PowerSGD's rounds inside the training step (vgg11_bn w0.5,
# batch 32, 1 Gbit/s), 4 hosts (2 ranks per core) and 2 hosts (1 per core), on the
# simulated cluster (root; run under /work/bin/quiet holding the cluster lock):
#   [SPEC=powersgd:rank=2] benchmarks/model_rounds.sh OUTDIR [HOSTS...]
#   [CHAIN="6 18"] benchmarks/model_rounds.sh OUTDIR chain   (oversub calibration, chain
#   phase with short blocks of each number of slices, 2 and 4 hosts twice)
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1; shift
mkdir -p "$out"
sim=launch/simcluster.sh
trap '$sim down >/dev/null 2>&1 || true' EXIT
spec=${SPEC:-powersgd:rank=2}
if [ "${1:-}" = chain ]; then
    # the oversubscription calibration's chain phase at several codec block lengths
    for slices in ${CHAIN:-6 18}; do
        for h in 2 4 2 4; do
            $sim up $h 1gbit >/dev/null
            $sim run -- -n $h env OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
                .venv/bin/python -m dtnn.bench.oversub --repeats 15 --slices 120 \
                --chain-slices $slices --json "$out/oversub_chain.jsonl" \
                --label "$h hosts 1gbit $h ranks chain $slices slices"
        done
    done
    exit 0
fi
for h in "${@:-4 2}"; do
    $sim up $h 1gbit >/dev/null
    echo "== $h hosts 1gbit $spec"
    $sim run -- -n $h env OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
        .venv/bin/python -m dtnn.bench.model_rounds --model vgg11_bn:width=0.5 \
        --compress "$spec" --steps 12 --warmup 4 \
        --json "$out/rounds.jsonl" --label "$h hosts 1gbit $h ranks $spec"
done
