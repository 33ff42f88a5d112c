#!/usr/bin/env bash
# one before/after pair on the simulated cluster: $1 = order (base-first|fused-first), $2 = pair id
set -u
OUT=/work/wt/i17e/benchmarks/results/scaling_cx_fused
run() {  # $1 = label, $2 = worktree
  echo "== $1 ($2, $(git -C $2 rev-parse --short HEAD)) $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
  (cd $2 && .venv/bin/dtnn bench scaling --out $OUT/$1_$PAIR \
    --models vgg11_bn:width=0.5 --hosts 2 4 --links 1gbit \
    --compress int8 qsgd:bits=8 terngrad sign randomk:ratio=0.01 ${EXTRA:-} \
    --modes overlap none --steps 10 --warmup 5 --timeout 200) 2>&1 | tail -4
}
PAIR=$2
if [ "$1" = base-first ]; then
  run base /work/wt/i17e-base; run fused /work/wt/i17e
else
  EXTRA='int8|bucket_mb=1 terngrad|bucket_mb=1 sign|bucket_mb=1' run fused /work/wt/i17e; EXTRA= run base /work/wt/i17e-base
fi
echo "== end $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
