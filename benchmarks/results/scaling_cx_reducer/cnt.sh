#!/usr/bin/env bash
# counts per step (cnt.py) on the simulated cluster, 2 hosts at 1 Gbit/s, before and after
# $1 = label suffix; TREES = "before after" order
set -u
cd /work/wt/hooks
D=/work/wt/hooks/benchmarks/results/scaling_cx_reducer
launch/simcluster.sh up 2 1gbit >/dev/null
for side in ${TREES:-before after}; do
  T=/work/wt/hooks; [ $side = before ] && T=/tmp/i17h_before
  echo "== $side ($T: $(cat $T/COMMIT 2>/dev/null || git -C $T rev-parse --short HEAD)) $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
  (cd $T && PYTHONPATH=$T PROF_OUT=$D/cnt_${side}_$1.json timeout 200 /work/wt/hooks/launch/simcluster.sh run -- -n 2 .venv/bin/python $D/cnt.py \
     randomk:ratio=0.01 'terngrad|collective=qring,tune=false' 'sign|collective=qring,tune=false' 'int8|collective=qring,tune=false') 2>&1 | grep -v "^$" | tail -12
done
launch/simcluster.sh down >/dev/null
echo "== end $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
