#!/usr/bin/env bash
# quiet call 1 (helper-T): main's tree (this worktree, unchanged), 2 hosts 1 Gbit/s, vgg11_bn w0.5:
# a traced run (timeline), then two untraced runs with references, qring vs allgather per compressor,
# the compressor order reversed in the second
set -u
R=/work/wt/tail/benchmarks/results/scaling_cx_tail
OUT=${OUT:-/tmp/t17_call1}
mkdir -p $OUT
Q=collective=qring,tune=false; A=collective=allgather,tune=false
SPECS=("randomk:ratio=0.01" "terngrad|$Q" "terngrad|$A" "sign|$Q" "sign|$A" "int8|$Q" "int8|$A")
REV=(); for ((i=${#SPECS[@]}-1;i>=0;i--)); do REV+=("${SPECS[i]}"); done
run() {  # $1 = out, rest = specs
  local o=$1; shift
  echo "== $o $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
  (cd /work/wt/tail && PYTHONPATH=/work/wt/tail .venv/bin/python -m dtnn bench scaling --out $o --frameworks dtnn \
    --models vgg11_bn:width=0.5 --hosts 2 --links 1gbit --compress "$@" \
    --modes overlap none --steps 20 --warmup 5 --timeout 200) 2>&1 | tail -1
}
bash $R/trace.sh $OUT/trace_main /work/wt/tail "${SPECS[@]}"
run $OUT/ab_1 "${SPECS[@]}"
run $OUT/ab_2 "${REV[@]}"
echo "== end $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
