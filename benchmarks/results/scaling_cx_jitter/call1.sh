#!/usr/bin/env bash
# quiet call 1 (issue #17, helper-J): P pairs before/after, alternating which runs first,
# each run traced per rank (trace/sitecustomize.py) and the machine's other tasks
# sampled over the run (schedsnap.py, 11 s from 4 s after the start)
set -u
D=/work/wt/jitter/benchmarks/results/scaling_cx_jitter
O=$D/call1
mkdir -p $O
echo "== quiet call start $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
one() {  # $1 = label
  case $1 in before*) T=/tmp/ij_before; C=/tmp/ij_cache_before ;;
             *) T=/tmp/ij_after; C=/tmp/ij_cache_after ;; esac
  (sleep 4; python3 $D/schedsnap.py 11 > $O/sched_$1.txt) &
  bash $D/run1.sh $1 $T $C $O
  wait
}
for i in $(seq 1 ${P:-6}); do
  if [ $((i % 2)) = 1 ]; then one before_$i; one after_$i; else one after_$i; one before_$i; fi
done
echo "== end $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
