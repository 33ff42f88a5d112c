#!/usr/bin/env bash
# #17 dist.defer_update on the compressed exchanges: one `dtnn bench scaling` call,
# vgg11_bn w0.5, 2 hosts at 1 Gbit/s, each compressor synchronous and deferred, each row
# preceded by its own exchange-skipped reference (mode none); run inside /work/bin/quiet
# holding the cluster lock.
#   [EXTRA=,bucket_mb=1] [ONLY="terngrad int8"] pair.sh OUTDIR sync-first|defer-first [HOSTS...]
# sync-first: random-k S D, TernGrad D S, sign S D, int8 D S; defer-first: the reverse
# (EXTRA: more reducer options on every row; ONLY: these compressors only)
set -u
cd "$(dirname "$0")/../../.."
out=$1; order=$2; shift 2
hosts=${*:-2}
S=(randomk:ratio=0.01 'terngrad|collective=qring,tune=false' 'sign|collective=qring,tune=false'
   'int8|collective=qring,tune=false')
specs=()
flip=0; [ "$order" = defer-first ] && flip=1
for s in "${S[@]}"; do
  if [ -n "${ONLY:-}" ] && ! [[ " $ONLY " == *" ${s%%[:|]*} "* ]]; then continue; fi
  case $s in *"|"*) a="$s,defer_update=false${EXTRA:-}"; b="$s,defer_update=true${EXTRA:-}";;
             *) a="$s|defer_update=false${EXTRA:-}"; b="$s|defer_update=true${EXTRA:-}";; esac
  if [ $flip = 0 ]; then specs+=("$a" "$b"); flip=1; else specs+=("$b" "$a"); flip=0; fi
done
echo "== $out $order hosts $hosts $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg) commit $(git rev-parse --short HEAD)"
.venv/bin/python -m dtnn bench scaling --out "$out" --frameworks dtnn \
    --models vgg11_bn:width=0.5 --hosts $hosts --links 1gbit \
    --compress "${specs[@]}" --modes overlap none --steps 20 --warmup 5 --timeout 300 2>&1 | tail -2
echo "== end $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
