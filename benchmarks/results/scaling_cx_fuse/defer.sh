#!/usr/bin/env bash
# fuse_update with and without defer_update, one tree (main 48fbeca = this change), four
# configurations rotated over $1 rounds: plain, fuse, defer, defer+fuse; TernGrad and sign
# over qring, 2 hosts at 1 Gbit/s, vgg11_bn w0.5, each row paired with its own reference
set -u
T=/work/wt/fuse
OUT=$T/benchmarks/results/scaling_cx_fuse
run() {  # $1 = label, $2 = extra options
  echo "== $1 $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
  (cd $T && .venv/bin/python -m dtnn bench scaling --out $OUT/d_$1_$R --frameworks dtnn \
    --models vgg11_bn:width=0.5 --hosts 2 --links 1gbit \
    --compress "terngrad|collective=qring,tune=false$2" "sign|collective=qring,tune=false$2" \
    --modes overlap none --steps 20 --warmup 5 --timeout 200) 2>&1 | tail -1
}
CFG=(plain: fuse:,fuse_update=true defer:,defer_update=true deferfuse:,defer_update=true,fuse_update=true)
for R in $(seq 1 $1); do
  for k in 0 1 2 3; do
    c=${CFG[$(( (k + R - 1) % 4 ))]}
    run ${c%%:*} "${c#*:}"
  done
done
echo "== end $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
