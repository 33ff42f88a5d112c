#!/usr/bin/env bash
# one before/after pair (prep_before.sh made /tmp/i17f_before), 2 hosts at 1 Gbit/s,
# vgg11_bn w0.5, each compressor row with a reference measured next to it (mode none);
# "after" = this tree with dist.fuse_update=true on the qring rows (random-k: the control,
# nothing to hold).  $1 = pair id, $2 = before-first | after-first
set -u
AFTER=/tmp/i17f_after   # a copy of this tree (edits go on while the call waits)
OUT=/work/wt/fuse/benchmarks/results/scaling_cx_fuse
run() {  # $1 = label, $2 = tree, $3 = extra qring options
  echo "== $1 ($2: $(cat $2/COMMIT 2>/dev/null || git -C $2 rev-parse --short HEAD)) $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
  (cd $2 && PYTHONPATH=$2 .venv/bin/python -c 'import dtnn; print("   imports", dtnn.__file__)')
  (cd $2 && PYTHONPATH=$2 .venv/bin/python -m dtnn bench scaling --out $OUT/$1_$PAIR --frameworks dtnn \
    --models vgg11_bn:width=0.5 --hosts 2 --links 1gbit \
    --compress randomk:ratio=0.01 "terngrad|collective=qring,tune=false$3" \
               "sign|collective=qring,tune=false$3" "int8|collective=qring,tune=false$3" \
    --modes overlap none --steps 20 --warmup 5 --timeout 200) 2>&1 | tail -2
}
PAIR=$1
if [ "$2" = before-first ]; then
  run before /tmp/i17f_before ""; run after $AFTER ",fuse_update=true"
else
  run after $AFTER ",fuse_update=true"; run before /tmp/i17f_before ""
fi
echo "== end $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
