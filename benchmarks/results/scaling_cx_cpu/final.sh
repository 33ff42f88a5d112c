#!/usr/bin/env bash
# the last quiet call (inside quiet + the cluster lock): two before/after pairs in both
# orders (+ the tuned terngrad and sign rows), then a perf profile of each side
set -u
D=/work/wt/i17e/benchmarks/results/scaling_cx_cpu
export EXTRA_SPECS="terngrad sign"
$D/ab_tree.sh 3 before-first
$D/ab_tree.sh 4 after-first
unset EXTRA_SPECS
S=(none 'terngrad|collective=qring,tune=false' 'sign|collective=qring,tune=false' randomk:ratio=0.01 none_end)
TREE=/tmp/i17e_before TSTEPS=20 $D/run.sh pbefore 2 "${S[@]}"
TSTEPS=20 $D/run.sh pafter 2 "${S[@]}"
