#!/usr/bin/env bash
# one quiet call (inside quiet + the cluster lock): before/after pairs in both orders,
# then a perf profile per rank of each side (scaling_cx_cpu/prof.py through run.sh)
set -u
D=/work/wt/i17e/benchmarks/results/scaling_qring_hop
$D/ab.sh ${P1:-1} before-first
$D/ab.sh ${P2:-2} after-first
if [ -n "${PROFILE:-}" ]; then
  S=(none 'terngrad|collective=qring,tune=false' 'sign|collective=qring,tune=false' 'int8|collective=qring,tune=false' none_end)
  TREE=/tmp/i17e_before TSTEPS=20 $D/run.sh pbefore 2 "${S[@]}"
  TSTEPS=20 $D/run.sh pafter 2 "${S[@]}"
fi
