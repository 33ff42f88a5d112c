#!/usr/bin/env bash
# The session's before/after rows in one quiet call: session start (e977f7a, its own clone
# and build in /tmp/i17_start) vs main at the end of the session (/work/main), four variants
# rotated over $2 rounds: B = start, A = main, F = main with dist.fuse_update, DF = main
# with dist.defer_update + dist.fuse_update (random-k: defer only; fuse applies to the
# quantised ring).  2 hosts at 1 Gbit/s, vgg11_bn w0.5, every compressor row paired with
# the exchange-skipped step measured next to it (efficiency_paired).  $1 = output folder.
set -u
OUT=$1; NR=${2:-4}
Q="collective=qring,tune=false"
run() {  # $1 = variant, $2 = tree, $3 = qring extra, $4 = random-k extra
  echo "== $1 round $R ($(git -C $2 rev-parse --short HEAD)) $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
  (cd $2 && PYTHONPATH=$2 .venv/bin/python -m dtnn bench scaling --out $OUT/$1_$R --frameworks dtnn \
    --models vgg11_bn:width=0.5 --hosts 2 --links 1gbit \
    --compress "randomk:ratio=0.01$4" "terngrad|$Q$3" "sign|$Q$3" "int8|$Q$3" \
    --modes overlap none --steps 20 --warmup 5 --timeout 200) 2>&1 | tail -1
}
V=(B A F DF)
for R in $(seq 1 $NR); do
  for k in 0 1 2 3; do
    case ${V[$(( (k + R - 1) % 4 ))]} in
      B) run B /tmp/i17_start "" "" ;;
      A) run A /work/main "" "" ;;
      F) run F /work/main ",fuse_update=true" "" ;;
      DF) run DF /work/main ",defer_update=true,fuse_update=true" "|defer_update=true" ;;
    esac
  done
done
echo "== end $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
