#!/usr/bin/env bash
# progress_interval before (0: every hook advances) / after (default 2e-4 s) in one job,
# 2 hosts at 1 Gbit/s, vgg11_bn w0.5; $1 = pair id, $2 = order (old-first|new-first)
set -u
cd /work/wt/i17e
OUT=benchmarks/results/scaling_cx_cpu/interval_$1
T='terngrad|collective=qring,tune=false'; S='sign|collective=qring,tune=false'; R='randomk:ratio=0.01'
if [ "$2" = old-first ]; then
  SPECS=("$T,progress_interval=0" "$T" "$S,progress_interval=0" "$S" "$R|progress_interval=0" "$R")
else
  SPECS=("$T" "$T,progress_interval=0" "$S" "$S,progress_interval=0" "$R" "$R|progress_interval=0")
fi
echo "== $1 $2 $(git rev-parse --short HEAD) $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
.venv/bin/dtnn bench scaling --out $OUT --frameworks dtnn --models vgg11_bn:width=0.5 --hosts 2 \
  --links 1gbit --compress "${SPECS[@]}" --modes overlap none --steps 20 --warmup 5 --timeout 200 2>&1 | tail -2
echo "== end $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
