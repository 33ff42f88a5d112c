#!/usr/bin/env bash
# the second quiet call: three trees rotated, each job as ab.sh's (2 hosts, 1 Gbit/s,
# vgg11_bn w0.5, random-k / TernGrad / sign each with its paired reference), rounds
# $1..$2; trees: before = main 1b40377 (/tmp/i17a_before), layout = aca1d40 (/tmp/i17a_lay),
# early = aca1d40 + early_own_decode.patch (/tmp/i17a_exp); all with main 1b40377's kernels
set -u
OUT=/work/wt/a/benchmarks/results/scaling_cx_hooks
echo "== start $(date -u +%H:%M:%S) uptime: $(uptime)"
run() {  # $1 = label, $2 = tree
  echo "== $1 ($2: $(cat $2/COMMIT)) $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
  (cd $2 && PYTHONPATH=$2 .venv/bin/python -m dtnn bench scaling --out $OUT/c2/$1_$R --frameworks dtnn \
    --models vgg11_bn:width=0.5 --hosts 2 --links 1gbit \
    --compress randomk:ratio=0.01 'terngrad|collective=qring,tune=false' \
               'sign|collective=qring,tune=false' \
    --modes overlap none --steps 20 --warmup 5 --timeout 200) 2>&1 | tail -1
}
for R in $(seq $1 $2); do
  case $((R % 3)) in
    1) run before /tmp/i17a_before; run layout /tmp/i17a_lay; run early /tmp/i17a_exp ;;
    2) run early /tmp/i17a_exp; run before /tmp/i17a_before; run layout /tmp/i17a_lay ;;
    0) run layout /tmp/i17a_lay; run early /tmp/i17a_exp; run before /tmp/i17a_before ;;
  esac
done
echo "== end $(date -u +%H:%M:%S) uptime: $(uptime)"
