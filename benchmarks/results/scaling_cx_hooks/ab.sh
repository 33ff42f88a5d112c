#!/usr/bin/env bash
# one before/after pair (prep_before.sh made /tmp/i17a_before), 2 hosts at 1 Gbit/s,
# vgg11_bn w0.5, each compressor row with a reference measured next to it (mode none);
# $1 = pair id, $2 = before-first | after-first
set -u
OUT=/work/wt/a/benchmarks/results/scaling_cx_hooks
run() {  # $1 = label, $2 = tree
  echo "== $1 ($2: $(cat $2/COMMIT 2>/dev/null || git -C $2 rev-parse --short HEAD)) $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
  (cd $2 && PYTHONPATH=$2 .venv/bin/python -m dtnn bench scaling --out $OUT/$1_$PAIR --frameworks dtnn \
    --models vgg11_bn:width=0.5 --hosts 2 --links 1gbit \
    --compress randomk:ratio=0.01 'terngrad|collective=qring,tune=false' \
               'sign|collective=qring,tune=false' \
    --modes overlap none --steps 20 --warmup 5 --timeout 200) 2>&1 | tail -1
}
PAIR=$1
if [ "$2" = before-first ]; then
  run before /tmp/i17a_before; run after /work/wt/a
else
  run after /work/wt/a; run before /tmp/i17a_before
fi
echo "== end $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
