#!/usr/bin/env bash
# The pruning campaign of benchmarks/results/prune.md, one step per invocation so each
# call stays short on a shared machine:  bash benchmarks/prune/campaign.sh STEP [OUT]
# STEP: base | taylor | l1 | random | taylor-n4 | torch-pruning | final-CRITERION |
#       final-long | taylor-250 | final-250 | bench | bench-isa | report
# OUT (default /tmp/dtnn-prune) receives the run directories; nothing is written under
# benchmarks/results unless you copy it there.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${2:-/tmp/dtnn-prune}
BIN=.venv/bin
CFG=benchmarks/prune/cnet_fmnist.toml
BASE=$OUT/base/checkpoint.h5
PRUNE_ARGS=(--keep 0.2 --config "$CFG" --set output.progress=false)
case "$1" in
  base)   $BIN/dtnn train --config "$CFG" --run-dir "$OUT/base" ;;
  taylor|l1|random)
          $BIN/dtnn prune "$BASE" "${PRUNE_ARGS[@]}" --criterion "$1" --run-dir "$OUT/$1" ;;
  taylor-n4)
          # same global batch (64 = 4 x 16); latency is not measured with 4 busy ranks
          $BIN/mpiexec -n 4 $BIN/dtnn prune "$BASE" "${PRUNE_ARGS[@]}" --criterion taylor \
              --set train.global_batch_size=64 --set prune.latency_reps=0 \
              --run-dir "$OUT/taylor-n4" ;;
  final-long)
          # the finished Taylor run continued with a longer final phase: 10 epochs, cosine
          # lr from 0.02 down to 0, best on a 10% validation split kept (no early stop)
          rm -rf "$OUT/taylor-ft10" && cp -r "$OUT/taylor" "$OUT/taylor-ft10"
          $BIN/dtnn prune "$BASE" "${PRUNE_ARGS[@]}" --criterion taylor --resume \
              --run-dir "$OUT/taylor-ft10" --set prune.final_epochs=10 \
              --set prune.final_schedule=cosine --set prune.lr=0.02 \
              --set data.val_fraction=0.1 --set output.keep_best=eval_accuracy \
              --set train.monitor=eval_accuracy ;;
  taylor-250)
          # the study's second setting: 250 fine-tuning iterations after every step.
          # Long: run it in slices, e.g. /work/bin/busy timeout -s INT 900 bash campaign.sh
          # taylor-250 (exec: the signal reaches dtnn, which saves its state after each
          # finished step); the next call resumes exactly
          resume=(); [ -e "$OUT/taylor-250/prune_state.h5" ] && resume=(--resume)
          exec $BIN/dtnn prune "$BASE" "${PRUNE_ARGS[@]}" --criterion taylor "${resume[@]}" \
              --set prune.finetune_steps=250 --run-dir "$OUT/taylor-250" ;;
  final-250)
          rm -rf "$OUT/taylor-250-ft" && cp -r "$OUT/taylor-250" "$OUT/taylor-250-ft"
          $BIN/dtnn prune "$BASE" "${PRUNE_ARGS[@]}" --criterion taylor --resume \
              --set prune.finetune_steps=250 --run-dir "$OUT/taylor-250-ft" \
              --set prune.final_epochs=10 --set prune.final_schedule=cosine \
              --set prune.lr=0.02 --set data.val_fraction=0.1 \
              --set output.keep_best=eval_accuracy --set train.monitor=eval_accuracy ;;
  final-*)
          # the finished run continued (--resume) with prune.final_epochs: up to 3 epochs,
          # best on a 10% validation split kept, early stopping, plateau lr reduction
          crit=${1#final-}
          rm -rf "$OUT/$crit-ft" && cp -r "$OUT/$crit" "$OUT/$crit-ft"
          $BIN/dtnn prune "$BASE" "${PRUNE_ARGS[@]}" --criterion "$crit" --resume \
              --run-dir "$OUT/$crit-ft" --set prune.final_epochs=3 \
              --set data.val_fraction=0.1 --set output.keep_best=eval_accuracy \
              --set train.monitor=eval_accuracy --set train.early_stopping_patience=2 \
              --set schedule.plateau_patience=1 ;;
  torch-pruning)
          $BIN/python benchmarks/prune/torch_pruning_peer.py "$BASE" --out "$OUT/torch-pruning" \
              --keep 0.2 --steps 16 --batches 10 --finetune 100 --lr 0.01 ;;
  bench)  # run under /work/bin/quiet: timings (engines dtnn = fused plan, dtnn-layers,
          # torch eager, ONNX Runtime; 1 and 2 threads)
          for ck in "$BASE" "$OUT/taylor-ft/pruned.h5"; do
              $BIN/dtnn bench infer "$ck" --batch 64 --json "${ck%.h5}.infer.json" \
                  --markdown "${ck%.h5}.infer.md"
          done
          $BIN/python benchmarks/prune/profile_b1.py "$BASE" "$OUT/taylor-ft/pruned.h5" \
              > "$OUT/profile_b1.md" ;;
  bench-isa)  # quiet: dtnn's paths capped to AVX2 + FMA and to the portable baseline
          # (what an AVX2-only or older CPU runs), 1 thread
          for isa in avx2 generic; do
              for ck in "$BASE" "$OUT/taylor-ft/pruned.h5"; do
                  DTNN_ISA=$isa $BIN/dtnn bench infer "$ck" --engine dtnn \
                      --engine dtnn-layers --threads 1 --batch 64 \
                      --json "${ck%.h5}.infer-$isa.json" --markdown "${ck%.h5}.infer-$isa.md"
              done
          done ;;
  report) $BIN/python -c "import sys; from dtnn.prune.report import compare; compare(sys.argv[2:], sys.argv[1])" \
              "$OUT/criteria.png" "$OUT/taylor" "$OUT/l1" "$OUT/random" "$OUT/torch-pruning" \
              "$OUT/taylor-n4"
          $BIN/python benchmarks/prune/summarize.py "$OUT/taylor" "$OUT/l1" "$OUT/random" \
              "$OUT/taylor-n4" "$OUT/torch-pruning" > "$OUT/summary.md" ;;
  *) echo "unknown step $1"; exit 2 ;;
esac
