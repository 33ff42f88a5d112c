#!/usr/bin/env bash
# timeline traces on the simulated cluster at 1 Gbit/s; $1 = label, rest = hosts
set -u
cd /work/wt/i17e
LABEL=$1; shift
eval "ARGS=(${SPECS:-none terngrad\|collective=qring,tune=false sign\|collective=qring,tune=false int8\|collective=qring,tune=false randomk:ratio=0.01 none_end})"
for H in "$@"; do
  echo "== $H hosts $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
  launch/simcluster.sh up $H 1gbit >/dev/null
  TSTEPS=${TSTEPS:-14} timeout 240 launch/simcluster.sh run -- -n $H .venv/bin/python benchmarks/results/scaling_cx_avx512/cpu/trace.py "${ARGS[@]}" 2>&1 | grep -v "median step" | tail -14
  D=benchmarks/results/scaling_cx_avx512/cpu; mv $D/trace_$H.json $D/trace_${LABEL}_$H.json
  launch/simcluster.sh down >/dev/null
done
echo "== end $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
