#!/usr/bin/env bash
# quiet call 3 (helper-T): before (main in /tmp/i17t_before, prep_before.sh) vs after (this
# worktree: payload-sized buckets), 2 hosts 1 Gbit/s, vgg11_bn w0.5, 4 pairs alternating
# (before first in odd pairs); then a traced run of the after tree (int8)
set -u
R=/work/wt/tail/benchmarks/results/scaling_cx_tail
OUT=${OUT:-/tmp/t17_call3}
mkdir -p $OUT
Q=collective=qring,tune=false
SPECS=("randomk:ratio=0.01" "int8|$Q" "terngrad|$Q" "sign|$Q")
run() {  # $1 = label, $2 = tree
  echo "== $1 ($2: $(cat $2/COMMIT 2>/dev/null || git -C $2 rev-parse --short HEAD)) $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
  (cd $2 && PYTHONPATH=$2 .venv/bin/python -c "import dtnn, sys; print('   imports', dtnn.__file__)" && \
   PYTHONPATH=$2 .venv/bin/python -m dtnn bench scaling --out $OUT/$1 --frameworks dtnn \
    --models vgg11_bn:width=0.5 --hosts 2 --links 1gbit --compress "${SPECS[@]}" \
    --modes overlap none --steps 20 --warmup 5 --timeout 200) 2>&1 | grep -v "^report" | tail -2
}
for p in ${PAIRS:-1 2 3 4}; do
  if [ $((p % 2)) = 1 ]; then run before_$p /tmp/i17t_before; run after_$p /work/wt/tail
  else run after_$p /work/wt/tail; run before_$p /tmp/i17t_before; fi
done
bash $R/trace.sh $OUT/trace_after /work/wt/tail "int8|$Q"
echo "== end $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
