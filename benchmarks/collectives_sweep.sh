#!/usr/bin/env bash
# Allreduce algorithms per message size on the simulated cluster (root only):
#   benchmarks/collectives_sweep.sh HOSTS RATE OUT.jsonl [RANKS]
# Brings HOSTS simulated hosts up at RATE, then times MPI_Allreduce / MPI_Iallreduce
# under each MPICH algorithm setting, and dtnn's own ring, one mpiexec per setting
# (dtnn bench collectives; one JSON line per run in OUT.jsonl). Leaves the cluster up.
# ALLREDUCE_ALGOS= IALLREDUCE_ALGOS= (empty) skip the MPICH variants; ALGOS picks ours.
set -euo pipefail
cd "$(dirname "$0")/.."
hosts=$1 rate=$2 out=$3 ranks=${4:-$1}
sizes=${SIZES:-262144,1048576,4194304,9437184}
repeats=${REPEATS:-3}
sim=launch/simcluster.sh
$sim up "$hosts" "$rate" >/dev/null
run() {  # label, extra mpiexec args...
    local label=$1; shift
    echo "== $hosts hosts, $rate, $ranks ranks: $label"
    $sim run -- "$@" -n "$ranks" env OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \
        .venv/bin/python -m dtnn.bench.collectives --sizes "$sizes" --repeats "$repeats" \
        --algorithms "${ALGOS:-mpi-blocking,mpi,ring}" --json "$out" \
        --label "$hosts hosts $rate $ranks ranks: $label"
}
run "MPICH defaults"
for a in ${ALLREDUCE_ALGOS-recursive_doubling reduce_scatter_allgather ring}; do
    ALGOS=mpi-blocking run "Allreduce=$a" -genv MPIR_CVAR_ALLREDUCE_INTRA_ALGORITHM "$a"
done
for a in ${IALLREDUCE_ALGOS-sched_recursive_doubling sched_reduce_scatter_allgather tsp_ring}; do
    ALGOS=mpi run "Iallreduce=$a" -genv MPIR_CVAR_IALLREDUCE_INTRA_ALGORITHM "$a"
done
