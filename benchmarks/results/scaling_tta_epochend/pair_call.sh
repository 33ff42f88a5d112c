#!/bin/bash
# The TTA pair in one quiet call, as run at 20:10:39 UTC on 2026-12-07 (helper-C, #17):
# random-k 1 % (with a per-step trace of every rank), then DDP + PowerSGD, 4 hosts at
# 100 Mbit/s on the simulated cluster.  (The scratch copy that ran it first waited for
# the previous quiet call, tta_wait_policies.py --out .../ab, to finish.)
cd "$(dirname "$0")/../../.."
OUT=benchmarks/results/scaling_tta_epochend/pair
L="flock -w 180 /run/dtnn-simcluster.lock env DTNN_SIMCLUSTER_LOCKED=1"
TTA="--tta -c configs/simplecnn.toml --set train.epochs=3 --set schedule.warmup_epochs=0.2 --target 0.89 --evals-per-epoch 4 --tta-hosts 4 --tta-link 100mbit --out $OUT"
/work/bin/quiet timeout 470 $L env DTNN_STEP_TRACE=$PWD/$OUT/trace_randomk \
    .venv/bin/dtnn bench scaling $TTA --compress randomk:ratio=0.01 --ddp powersgd
