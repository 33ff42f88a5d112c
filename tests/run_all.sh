#!/usr/bin/env bash
# Runs the whole test suite: the serial tests, then the MPI tests under
# mpiexec -n 2 and -n 4 (pytest-mpi).  Exits non-zero if any part fails.
set -uo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
[ -x "$BIN/python" ] || { echo "tests: run 'bash launch/setup.sh' first"; exit 2; }
export OMP_WAIT_POLICY=PASSIVE
# the stall detector (dist.stall_timeout) is off in tests unless a test sets it
export DTNN_STALL_TIMEOUT="${DTNN_STALL_TIMEOUT:-0}"
status=0

echo "== serial tests"
# -rs: every skipped test is listed with its reason (tests/conftest.py fails a skip
# that gives none)
"$BIN/python" -m pytest -q -rs -p no:cacheprovider tests || status=1

# every compiled kernel has a numpy twin: the folders that drive the kernels through
# the library's own entry points run once more on the twins (DTNN_KERNELS=numpy), so a
# twin that drifts from its kernel (bits, -0, error messages) fails here
echo "== serial tests on the numpy twins (DTNN_KERNELS=numpy)"
DTNN_KERNELS=numpy "$BIN/python" -m pytest -q -rs -p no:cacheprovider \
    tests/compress tests/optim tests/kernels tests/infer tests/layers tests/conv || status=1

if ls tests/mpi/test_*.py >/dev/null 2>&1; then
    for n in 2 4; do
        echo "== MPI tests, $n processes"
        "$BIN/python" tests/mpi/run_mpi.py -n "$n" || status=1
    done
fi
exit $status
