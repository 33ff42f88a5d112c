#!/usr/bin/env bash
# the one quiet call (inside quiet + the cluster lock): the micros (fake-communicator op
# Python per step before/after; decode+update separate vs per block), then before/after
# pairs alternating in both orders (ab.sh), then a perf profile per rank of each side
set -u
D=/work/wt/a/benchmarks/results/scaling_cx_hooks
B=/tmp/i17a_before
echo "== start $(date -u +%H:%M:%S) uptime: $(uptime)"
S=('terngrad|qring' 'sign|qring' 'randomk:ratio=0.01')
for side in before after before after; do
  T=$B; [ $side = after ] && T=/work/wt/a
  echo "== opmicro $side $(cat $T/COMMIT 2>/dev/null || git -C $T rev-parse --short HEAD)"
  (cd $T && PYTHONPATH=$T /work/wt/a/.venv/bin/python -W ignore $D/opmicro.py 300 "${S[@]}")
done
echo "== fuse_micro $(date -u +%H:%M:%S)"
/work/wt/a/.venv/bin/python $D/fuse_micro.py 2371690 25 32768
/work/wt/a/.venv/bin/python $D/fuse_micro.py 2371690 25 8192
for i in 1 2 3 4 5; do
  if [ $((i % 2)) = 1 ]; then $D/ab.sh $i before-first; else $D/ab.sh $i after-first; fi
done
P=(none 'terngrad|collective=qring,tune=false' 'sign|collective=qring,tune=false' 'randomk:ratio=0.01' none_end)
TREE=$B TSTEPS=20 $D/run.sh pbefore 2 "${P[@]}"
TSTEPS=20 $D/run.sh pafter 2 "${P[@]}"
echo "== end $(date -u +%H:%M:%S) uptime: $(uptime)"
