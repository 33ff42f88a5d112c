#!/usr/bin/env bash
# one before/after pair on the simulated cluster (run inside quiet + the cluster lock):
# $1 = order (base-first|avx512-first), $2 = pair id.  base = main 966e7b0 + the bench
# commit (same measurement), avx512 = this branch (+ the AVX-512 compression kernels)
set -u
OUT=/work/wt/i17e/benchmarks/results/scaling_cx_avx512
run() {  # $1 = label, $2 = worktree
  echo "== $1 ($2, $(git -C $2 rev-parse --short HEAD)) $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
  (cd $2 && .venv/bin/dtnn bench scaling --out $OUT/$1_$PAIR --frameworks dtnn \
    --models vgg11_bn:width=0.5 --hosts 2 4 --links 1gbit \
    --compress int8 qsgd:bits=8 terngrad sign randomk:ratio=0.01 \
               'terngrad|collective=qring,tune=false' 'sign|collective=qring,tune=false' \
    --modes overlap none --steps 10 --warmup 5 --timeout 200) 2>&1 | tail -3
}
PAIR=$2
if [ "$1" = base-first ]; then
  run base /work/wt/i17e-base; run avx512 /work/wt/i17e
else
  run avx512 /work/wt/i17e; run base /work/wt/i17e-base
fi
echo "== end $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
