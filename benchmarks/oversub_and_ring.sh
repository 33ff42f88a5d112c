#!/usr/bin/env bash
# #17 calibration of the cost model's oversubscription term and the pipelined ring, on the
# simulated cluster at 1 Gbit/s (root; run under /work/bin/quiet holding the cluster lock):
#   benchmarks/oversub_and_ring.sh OUTDIR [calib|sweep|scaling]...
# calib:   dtnn.bench.oversub at 2 hosts (1 rank per core) and 4 hosts (2 per core), twice
# sweep:   our ring per message size, 4 and 2 hosts; DTNN_RING_SEGMENTS=1/2/4 was a trial
#          of pipelined rings (measured, no gain, not kept: the variable does nothing now)
# scaling: simplecnn uncompressed 4 hosts: tuned default (twice), ring / MPI x 1 / 4 MiB
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1; shift
mkdir -p "$out"
sim=launch/simcluster.sh
trap '$sim down >/dev/null 2>&1 || true' EXIT
for what in "$@"; do
case $what in
calib)
    for h in 2 4 2 4 2 4 2 4; do
        $sim up $h 1gbit >/dev/null
        $sim run -- -n $h env OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
            .venv/bin/python -m dtnn.bench.oversub --repeats 15 --slices 120 \
            --json "$out/oversub.jsonl" --label "$h hosts 1gbit $h ranks"
    done ;;
sweep)
    for h in 4 2; do
        $sim up $h 1gbit >/dev/null
        segs="1 2 4 1 2 4"; [ $h = 2 ] && segs="1 2 1 2"
        for s in $segs; do
            echo "== $h hosts 1gbit, ring segments $s"
            $sim run -- -n $h env OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 DTNN_RING_SEGMENTS=$s \
                .venv/bin/python -m dtnn.bench.collectives --sizes 1048576,1572864,4194304,9437184 \
                --repeats 7 --algorithms ring --json "$out/sweep_segments.jsonl" \
                --label "$h hosts 1gbit $h ranks: ring segments=$s"
        done
    done ;;
scaling)
    # the tuned default twice, and the algorithm / bucket size forced (no tuner)
    .venv/bin/dtnn bench scaling --out "$out/scaling_simplecnn" \
        --models simplecnn --hosts 4 --links 1gbit --modes none overlap --steps 40 \
        --compress none 'none|tune=false,algorithm=ring,bucket_mb=1' \
                   'none|tune=false,algorithm=ring,bucket_mb=4' \
                   'none|tune=false,algorithm=mpi,bucket_mb=1' \
                   'none|tune=false,algorithm=mpi,bucket_mb=4'
    .venv/bin/dtnn bench scaling --out "$out/scaling_simplecnn_rerun" \
        --models simplecnn --hosts 4 --links 1gbit --modes none overlap --steps 40 \
        --compress none ;;
esac
done
