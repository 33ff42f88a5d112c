#!/usr/bin/env bash
# one profile job on the simulated cluster: $1 = output label, $2 = hosts, rest = specs
# TREE=<dir>: import dtnn from that copy (PYTHONPATH; the "before" side of an A/B)
# perf record -a (cpu-clock, call graphs) is enabled by rank 0 around each spec's window only
set -u
cd /work/wt/a
D=benchmarks/results/scaling_cx_hooks; L=$1; H=$2; shift 2
echo "== $L $H hosts $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
launch/simcluster.sh up $H 1gbit >/dev/null
rm -f /tmp/i17a_ctl /tmp/i17a_ack; mkfifo /tmp/i17a_ctl /tmp/i17a_ack
perf record -a -g -k CLOCK_MONOTONIC -F 2000 -D -1 --control fifo:/tmp/i17a_ctl,/tmp/i17a_ack \
  -o /tmp/i17a_perf_$L.data -- sleep 400 2>/tmp/i17a_perf_$L.err &
PP=$!
sleep 1
[ -n "${TREE:-}" ] && export PYTHONPATH=$TREE
PERF_CTL=/tmp/i17a_ctl PERF_ACK=/tmp/i17a_ack PROF_OUT=$D/prof_$L.json timeout 300 \
  launch/simcluster.sh run -- -n $H .venv/bin/python benchmarks/results/scaling_cx_hooks/prof.py "$@" 2>&1 | grep -v "^$" | tail -40
kill -INT $PP; wait $PP
launch/simcluster.sh down >/dev/null
echo "== end $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
