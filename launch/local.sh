#!/usr/bin/env bash
# Data-parallel training on this machine: N processes (default 4) of `dtnn train`.
#
#   launch/local.sh                         # 4 ranks, configs/simplecnn.toml
#   NP=2 launch/local.sh --config configs/vgg11_bn.toml --set train.epochs=1
#
# Threads per rank default to cores // ranks (at least 1); set THREADS to override.
# More ranks than cores is allowed (MPICH's hydra oversubscribes without a flag) but
# slow; OMP_WAIT_POLICY=PASSIVE keeps idle OpenMP threads from spinning.
set -euo pipefail
cd "$(dirname "$0")/.."
NP=${NP:-4}
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || { echo "local.sh: no $VENV (run 'bash launch/setup.sh', or set VENV=...)" >&2; exit 2; }
MPIEXEC="$VENV/bin/mpiexec"   # the launcher of the MPI that mpi4py uses (pip 'mpich')
[ -x "$MPIEXEC" ] || MPIEXEC=mpiexec
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--config configs/simplecnn.toml)
if [ -n "${THREADS:-}" ]; then args+=(--set "train.threads=$THREADS"); fi
exec "$MPIEXEC" -n "$NP" "$VENV/bin/python" -m dtnn train "${args[@]}"
