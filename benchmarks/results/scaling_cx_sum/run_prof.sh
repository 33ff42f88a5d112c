#!/usr/bin/env bash
# perf profile of one tree on the simulated cluster (the profiler of ../scaling_cx_cpu:
# prof.py, psum.py, psym.py): $1 = label, $2 = hosts, rest = specs; TREE=<dir> imports
# dtnn from that copy (the "before" side).  perf record -a (cpu-clock 2 kHz, call graphs)
# is enabled by rank 0 around each spec's timed window only.  perf data: /tmp/i17s_perf_$1.data
set -u
R=/work/wt/i17s
P=$R/benchmarks/results/scaling_cx_cpu
D=$R/benchmarks/results/scaling_cx_sum; L=$1; H=$2; shift 2
cd ${TREE:-$R}
echo "== $L $H hosts $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg) tree $(pwd)"
launch/simcluster.sh up $H 1gbit >/dev/null
rm -f /tmp/i17s_ctl /tmp/i17s_ack; mkfifo /tmp/i17s_ctl /tmp/i17s_ack
perf record -a -g -k CLOCK_MONOTONIC -F 2000 -D -1 --control fifo:/tmp/i17s_ctl,/tmp/i17s_ack \
  -o /tmp/i17s_perf_$L.data -- sleep 400 2>/tmp/i17s_perf_$L.err &
PP=$!
sleep 1
export PYTHONPATH=$(pwd)
PERF_CTL=/tmp/i17s_ctl PERF_ACK=/tmp/i17s_ack PROF_OUT=$D/prof_$L.json TSTEPS=${TSTEPS:-20} timeout 300 \
  launch/simcluster.sh run -- -n $H $R/.venv/bin/python $P/prof.py "$@" 2>&1 | grep -v "^$" | tail -40
kill -INT $PP; wait $PP
launch/simcluster.sh down >/dev/null
echo "== end $(date -u +%H:%M:%S) load $(cut -d' ' -f1-3 /proc/loadavg)"
