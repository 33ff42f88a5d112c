#!/usr/bin/env bash
# Sets up dtnn on a fresh machine (idempotent): the Fashion-MNIST Debian package when
# apt is available, a virtualenv in .venv, torch (pinned CPU build), the MPICH wheel
# (gives mpiexec), and dtnn itself with its compiled kernels and test dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

if [ ! -d /usr/share/datasets/fashion-mnist ] && command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        echo "setup: installing dataset-fashion-mnist (apt)"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            dataset-fashion-mnist >/dev/null) \
            || echo "setup: warning: apt could not install dataset-fashion-mnist; Fashion-MNIST tests will be skipped"
    else
        echo "setup: warning: not root, skipping 'apt-get install dataset-fashion-mnist'"
    fi
fi

if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv"
    "$PY" -m venv .venv
fi
PIP=".venv/bin/pip"
"$PIP" install -q --upgrade pip setuptools wheel
# torch pinned: an unpinned torch pulls several GB of CUDA wheels.
"$PIP" install -q "torch==2.13.0"
"$PIP" install -q mpich "mpi4py>=4"
"$PIP" install -q -e ".[test]"
echo "setup: done ($(.venv/bin/dtnn --version))"
