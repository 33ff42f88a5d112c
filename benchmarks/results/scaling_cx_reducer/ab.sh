#!/usr/bin/env bash
# before/after pairs in one quiet call, 2 hosts at 1 Gbit/s, vgg11_bn w0.5, batch 32 per rank,
# each compressor row with its exchange-skipped reference measured next to it (mode none);
# before = /tmp/i17h_before (main's dtnn/ + launch/, this tree's kernels), after = this tree.
# $1 $2 = first and last pair (odd pairs before-first); then cnt.sh $3 (counts and per-step ms
# per rank) and pollmicro.py (us per poll with 1, 3, 5 ops in flight) on both trees
set -u
OUT=/work/wt/hooks/benchmarks/results/scaling_cx_reducer
run() {  # $1 = label, $2 = tree
  echo "== $1 ($2: $(cat $2/COMMIT 2>/dev/null || git -C $2 rev-parse --short HEAD)) $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
  (cd $2 && PYTHONPATH=$2 .venv/bin/python -c "import dtnn, os; print('dtnn from', os.path.dirname(dtnn.__file__))" && \
   PYTHONPATH=$2 .venv/bin/python -m dtnn bench scaling --out $OUT/$1_$PAIR --frameworks dtnn \
    --models vgg11_bn:width=0.5 --hosts 2 --links 1gbit \
    --compress randomk:ratio=0.01 'terngrad|collective=qring,tune=false' \
               'sign|collective=qring,tune=false' 'int8|collective=qring,tune=false' \
    --modes overlap none --steps 20 --warmup 5 --timeout 200) 2>&1 | tail -2
}
echo "== start $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
for PAIR in $(seq $1 $2); do
  if [ $((PAIR % 2)) = 1 ]; then
    run before /tmp/i17h_before; run after /work/wt/hooks
  else
    run after /work/wt/hooks; run before /tmp/i17h_before
  fi
done
$OUT/cnt.sh ${3:-quiet}
/work/wt/hooks/launch/simcluster.sh up 2 1gbit >/dev/null
for T in /tmp/i17h_before /work/wt/hooks; do
  (cd $T && PYTHONPATH=$T timeout 60 /work/wt/hooks/launch/simcluster.sh run -- -n 2 .venv/bin/python $OUT/pollmicro.py 1 2 3 5)
done
/work/wt/hooks/launch/simcluster.sh down >/dev/null
echo "== end $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
