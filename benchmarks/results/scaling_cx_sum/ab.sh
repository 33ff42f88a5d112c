#!/usr/bin/env bash
# before / after pairs in one call, 2 hosts at 1 Gbit/s, vgg11_bn w0.5, batch 32 per rank:
# "before" = a copy of main's dtnn/ + launch/ (see $BEFORE/COMMIT; compiled kernels copied
# from this tree, whose only C addition, _lowrank, the before tree does not import),
# "after" = this worktree.  Every compressed row has its exchange-skipped reference
# measured next to it (efficiency_paired).  $1 = pair id, $2 = before-first|after-first
# run inside: /work/bin/quiet flock -w 180 /run/dtnn-simcluster.lock env DTNN_SIMCLUSTER_LOCKED=1 ab.sh ...
set -u
AFTER=/work/wt/i17s
BEFORE=${BEFORE:-/tmp/i17s_before}
OUT=$AFTER/benchmarks/results/scaling_cx_sum
SPECS=${SPECS:-randomk:ratio=0.01 powersgd:rank=2}
HOSTS=${HOSTS:-2}
run() {  # $1 = label, $2 = tree
  echo "== $1 ($(cat $2/COMMIT 2>/dev/null || git -C $2 rev-parse --short HEAD)) $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
  (cd $2 && PYTHONPATH=$2 .venv/bin/python -c "import dtnn.compress.powersgd as p; print('dtnn from', p.__file__)")
  (cd $2 && PYTHONPATH=$2 .venv/bin/python -m dtnn bench scaling --out $OUT/$1_${HOSTS}h_$PAIR \
    --frameworks dtnn --models vgg11_bn:width=0.5 --hosts $HOSTS --links 1gbit \
    --compress $SPECS --modes overlap none --steps 20 --warmup 5 --timeout 200) 2>&1 | tail -1
}
PAIR=$1
if [ "$2" = before-first ]; then
  run before $BEFORE; run after $AFTER
else
  run after $AFTER; run before $BEFORE
fi
echo "== end $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
