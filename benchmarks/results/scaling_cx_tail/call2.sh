#!/usr/bin/env bash
# quiet call 2 (helper-T): main's tree (this worktree, unchanged), 2 hosts 1 Gbit/s, vgg11_bn w0.5:
# the bucket plan: default 4 MiB vs 0.25 MiB (about one bucket per conv layer) and 1 MiB (int8);
# one traced run, then three untraced runs with references in rotated orders
set -u
R=/work/wt/tail/benchmarks/results/scaling_cx_tail
OUT=${OUT:-/tmp/t17_call2}
mkdir -p $OUT
Q=collective=qring,tune=false
SPECS=("randomk:ratio=0.01" "int8|$Q" "int8|$Q,bucket_mb=0.25" "terngrad|$Q" "terngrad|$Q,bucket_mb=0.25"
       "sign|$Q" "sign|$Q,bucket_mb=0.25" "int8|$Q,bucket_mb=1")
run() {  # $1 = out, rest = specs
  local o=$1; shift
  echo "== $o $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
  (cd /work/wt/tail && PYTHONPATH=/work/wt/tail .venv/bin/python -m dtnn bench scaling --out $o --frameworks dtnn \
    --models vgg11_bn:width=0.5 --hosts 2 --links 1gbit --compress "$@" \
    --modes overlap none --steps 20 --warmup 5 --timeout 200) 2>&1 | tail -1
}
bash $R/trace.sh $OUT/trace_main /work/wt/tail "${SPECS[@]}"
n=${#SPECS[@]}
for rep in 1 2 3; do
  ROT=(); for ((i=0;i<n;i++)); do ROT+=("${SPECS[(i*(rep==2?-1:1)+rep*3+n)%n]}"); done
  run $OUT/ab_$rep "${ROT[@]}"
done
echo "== end $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
