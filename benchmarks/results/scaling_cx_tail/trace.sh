#!/usr/bin/env bash
# a traced run (sitecustomize.py timeline) of tree $2 into $1/ ; no reference rows
# $1 = out dir, $2 = tree, rest = compress specs
set -u
OUT=$1; TREE=$2; shift 2
HERE=/work/wt/tail/benchmarks/results/scaling_cx_tail
mkdir -p $OUT/trace
echo "== trace $OUT ($TREE) $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
(cd $TREE && DTNN_TRACE_DIR=$OUT/trace PYTHONPATH=$TREE:$HERE/trace .venv/bin/python -m dtnn bench scaling \
  --out $OUT --frameworks dtnn --models vgg11_bn:width=0.5 --hosts 2 --links 1gbit \
  --compress "$@" --modes overlap --steps 20 --warmup 5 --timeout 200) 2>&1 | tail -2
