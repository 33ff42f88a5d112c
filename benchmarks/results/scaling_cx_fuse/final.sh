#!/usr/bin/env bash
# one quiet call: the micro (cold cache, 2.37 M elements) then pairs $P1..$P2 of ab.sh,
# alternating which side runs first (odd pairs: before first)
set -u
D=/work/wt/fuse/benchmarks/results/scaling_cx_fuse
cd /work/wt/fuse
echo "== quiet call start $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
PYTHONPATH=/tmp/i17f_after .venv/bin/python $D/micro.py 2371690 ${REPS:-25}
for i in $(seq ${P1:-1} ${P2:-6}); do
  if [ $((i % 2)) = 1 ]; then bash $D/ab.sh $i before-first; else bash $D/ab.sh $i after-first; fi
done
