#!/usr/bin/env bash
# this tree only: qring rows at bucket_mb 4 (default), 2 and 1, each with a reference
# measured next to it (2 hosts at 1 Gbit/s, vgg11_bn w0.5); $1 = run id
set -u
OUT=/work/wt/i17e/benchmarks/results/scaling_qring_hop
echo "== buckets_$1 $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
(cd /work/wt/i17e && .venv/bin/python -m dtnn bench scaling --out $OUT/buckets_$1 --frameworks dtnn \
  --models vgg11_bn:width=0.5 --hosts 2 --links 1gbit \
  --compress 'terngrad|collective=qring,tune=false' 'terngrad|collective=qring,tune=false,bucket_mb=2' \
             'terngrad|collective=qring,tune=false,bucket_mb=1' 'sign|collective=qring,tune=false,bucket_mb=2' \
             'sign|collective=qring,tune=false,bucket_mb=1' \
  --modes overlap none --steps 20 --warmup 5 --timeout 200) 2>&1 | tail -1
echo "== end $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
