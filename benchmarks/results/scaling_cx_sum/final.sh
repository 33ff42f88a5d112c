#!/usr/bin/env bash
# the second quiet call (inside quiet + the cluster lock): a perf profile of each side
# (2 hosts), one more 2-host pair, then a pair at 4 hosts
set -u
D=$(cd "$(dirname "$0")" && pwd)
S=(none randomk:ratio=0.01 powersgd:rank=2 none_end)
TREE=/tmp/i17s_before $D/run_prof.sh pbefore 2 "${S[@]}"
$D/run_prof.sh pafter 2 "${S[@]}"
$D/ab.sh 3 after-first
HOSTS=4 $D/ab.sh 4 before-first
