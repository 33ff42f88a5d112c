#!/usr/bin/env bash
# #17 cost model re-validated on the fused codec kernels: the three quiet calls, as they ran
# (each under /work/bin/quiet timeout 470 holding the cluster lock, see scaling.md
# "Cost model re-validated on the fused codec kernels"):
#   benchmarks/model_reval3.sh OUTDIR rows1      the c1gbit + flat validation rows
#   benchmarks/model_reval3.sh OUTDIR rows2      the 2x2 + sparse validation rows, then the
#                                                 codec calibration on shared memory
#   benchmarks/model_reval3.sh OUTDIR final      the c1gbit rows again (OUTDIR/warm: the first
#                                                 run's exchange-skipped rows ran with the conv
#                                                 tuner's cache cold), the codec calibration
#                                                 again (same reason) plus every compressor on
#                                                 its other collectives, then the model
#   benchmarks/model_reval3.sh OUTDIR model      the model alone (calibrate, validate, predict)
# Each part appends the load, the time and the commit it ran on to OUTDIR/calls.log.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1; part=$2
mkdir -p "$out"
{ echo "== $part $(date -u '+%F %T') UTC, commit $(git rev-parse --short HEAD)," \
       "main $(git -C /work/main rev-parse --short HEAD 2>/dev/null || echo '?')"; uptime; } \
    >> "$out/calls.log"
codec() {   # the codec as the reducer spends it: 2 ranks on 2 cores, shared memory, no link
    local json=$1; shift
    .venv/bin/mpiexec -n 2 .venv/bin/dtnn bench dist --model vgg11_bn --model-option width=0.5 \
        --batch 32 --threads 1 --mode overlap "$@" --steps 8 --warmup 3 --json "$json"
}
case $part in
rows1) bash benchmarks/model_revalidate.sh "$out" c1gbit flat ;;
rows2)
    bash benchmarks/model_revalidate.sh "$out" 2x2 sparse
    # every compressor on the collective the exchange picks at 2 ranks (allgather for the
    # quantisers and top-k, the allreduce for the summable ones) ...
    codec "$out/codec_shm_n2.json" --compress fp16 --compress int8 --compress qsgd:bits=8 \
        --compress qsgd:bits=4 --compress terngrad --compress sign --compress topk:ratio=0.01 \
        --compress randomk:ratio=0.01 --compress powersgd:rank=2 --dist tune=false
    # ... and the quantisers on the quantised ring (their collective from 3 ranks on,
    # one fused C call per hop since 19:33): its codec is not the allgather's
    codec "$out/codec_shm_n2_qring.json" --compress int8 --compress qsgd:bits=8 \
        --compress terngrad --compress sign --dist tune=false --dist collective=qring ;;
final)
    bash benchmarks/model_revalidate.sh "$out/warm" c1gbit
    codec "$out/codec_shm_n2_warm.json" --compress fp16 --compress int8 --compress qsgd:bits=8 \
        --compress qsgd:bits=4 --compress terngrad --compress sign --compress topk:ratio=0.01 \
        --compress randomk:ratio=0.01 --compress powersgd:rank=2 --dist tune=false
    # the quantisers on the quantised ring, top-k on gtopk and SparCML: the collectives
    # the tuner picks for them besides the allgather
    codec "$out/codec_shm_n2_coll.json" --compress 'int8|collective=qring' \
        --compress 'qsgd:bits=8|collective=qring' --compress 'qsgd:bits=4|collective=qring' \
        --compress 'terngrad|collective=qring' --compress 'sign|collective=qring' \
        --compress 'topk:ratio=0.01|collective=gtopk' \
        --compress 'topk:ratio=0.01|collective=sparse' --dist tune=false
    bash "$0" "$out" model ;;
model)
    # the first run's vgg11_bn 1 Gbit/s cells are replaced by OUTDIR/warm's (see 'final')
    .venv/bin/python - "$out" <<'PY'
import json, sys
out = sys.argv[1]
with open(f"{out}/scaling/scaling.jsonl") as src, open(f"{out}/scaling_flat.jsonl", "w") as dst:
    for line in src:
        r = json.loads(line)
        if not (r.get("kind") == "throughput" and r.get("link") == "1gbit"
                and r["model_spec"].startswith("vgg11_bn")):
            dst.write(line)
PY
    .venv/bin/dtnn bench model \
        --sweep benchmarks/results/collectives/sweep.jsonl benchmarks/results/collectives/sweep_small.jsonl \
        --validate "$out/warm/scaling/scaling.jsonl" "$out/scaling_flat.jsonl" \
                   "$out/scaling_2x2/scaling.jsonl" "$out/scaling_sparse/scaling.jsonl" \
        --codec-from "$out/codec_shm_n2_warm.json" "$out/codec_shm_n2_coll.json" \
        --oversub benchmarks/results/model_oversub/oversub_first.jsonl \
                  benchmarks/results/model_oversub/oversub.jsonl \
                  benchmarks/results/model_rounds/oversub.jsonl \
                  benchmarks/results/model_rounds/oversub_chain.jsonl \
        --ranks-per-core 1 2 --out "$out/model" ;;
*) echo "model_reval3.sh: unknown part '$part' (rows1, rows2, final, model)" >&2; exit 2 ;;
esac
