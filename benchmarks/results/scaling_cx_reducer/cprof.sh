#!/usr/bin/env bash
cd /work/wt/hooks
launch/simcluster.sh up 2 1gbit >/dev/null
FILT="parallel|MPI|Isend|Irecv|Test|perf_counter|compress" TOP=40 TSTEPS=20 timeout 200 launch/simcluster.sh run -- -n 2 .venv/bin/python benchmarks/results/scaling_cx_reducer/cprof.py 'terngrad|collective=qring,tune=false' 'int8|collective=qring,tune=false'
launch/simcluster.sh down >/dev/null
