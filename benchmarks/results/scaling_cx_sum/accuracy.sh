#!/usr/bin/env bash
# accuracy, not timing (busy): simplecnn on Fashion-MNIST, 2 ranks, 3 epochs, PowerSGD rank 2
# and random-k 1 %, old numpy form ("before" tree, main fd41321) vs the fused kernels (this tree)
set -u
R=/work/wt/i17s; B=${BEFORE:-/tmp/i17s_before}; OUT=${OUT:-/tmp/i17s_acc}
for spec in powersgd:rank=2 randomk:ratio=0.01; do
  for side in before after; do
    T=$R; [ $side = before ] && T=$B
    d=$OUT/${spec%%:*}_$side; rm -rf $d
    (cd $T && PYTHONPATH=$T $R/.venv/bin/mpiexec -n 2 $R/.venv/bin/python -m dtnn train \
      --config $R/configs/simplecnn.toml --set train.epochs=3 --set "dist.compress=\"$spec\"" \
      --set "output.run_dir=\"$d\"" 2>&1 | grep -i "epoch 3\|accuracy\|test" | tail -2)
    echo "== $spec $side ($T)"
  done
done
