#!/usr/bin/env bash
# one traced bench scaling run: $1 = label, $2 = tree, $3 = tune cache dir, $4 = out root
# 2 hosts at 1 Gbit/s, vgg11_bn w0.5, random-k 1 % + TernGrad/sign/int8 on the
# quantised ring with fuse_update, each row with its own exchange-skipped reference
set -u
L=$1; T=$2; C=$3; O=$4
HERE=/work/wt/jitter/benchmarks/results/scaling_cx_jitter
mkdir -p $O/$L/trace
echo "== $L ($T: $(cat $T/COMMIT); cache $C) $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
(cd $T && PYTHONPATH=$T .venv/bin/python -c 'import dtnn; print("   imports", dtnn.__file__)')
(cd $T && DTNN_TUNE_CACHE=$C DTNN_JTRACE_DIR=$O/$L/trace PYTHONPATH=$T:$HERE/trace \
  .venv/bin/python -m dtnn bench scaling --out $O/$L --frameworks dtnn \
  --models vgg11_bn:width=0.5 --hosts 2 --links 1gbit \
  --compress randomk:ratio=0.01 "terngrad|collective=qring,tune=false,fuse_update=true" \
             "sign|collective=qring,tune=false,fuse_update=true" \
             "int8|collective=qring,tune=false,fuse_update=true" \
  --modes overlap none --steps 20 --warmup 5 --timeout 200) 2>&1 | tail -2
