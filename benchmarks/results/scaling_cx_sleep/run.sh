#!/usr/bin/env bash
# yielding vs sleeping final wait, same job, rows alternating (run inside quiet + the cluster lock)
set -u
cd /work/wt/i17e
echo "== $(git rev-parse --short HEAD) $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
Y=collective=qring,tune=false
.venv/bin/dtnn bench scaling --out benchmarks/results/scaling_cx_sleep/run_$1 --frameworks dtnn \
  --models vgg11_bn:width=0.5 --hosts $2 --links 1gbit \
  --compress "terngrad|$Y" "terngrad|$Y,wait_sleep_us=100" "sign|$Y,wait_sleep_us=100" "sign|$Y" \
             "randomk:ratio=0.01" "randomk:ratio=0.01|wait_sleep_us=100" "int8|$Y,wait_sleep_us=100" "int8|$Y" \
             "terngrad|$Y,wait_sleep_us=100" "terngrad|$Y" "sign|$Y" "sign|$Y,wait_sleep_us=100" \
  --modes overlap none --steps 10 --warmup 5 --timeout 300 2>&1 | tail -2
echo "== end $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
