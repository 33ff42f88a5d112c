#!/usr/bin/env bash
# Sets up dtnn on a fresh machine (idempotent): the Fashion-MNIST and iproute2 Debian
# packages when apt is available, a virtualenv in .venv, torch (pinned CPU build), the MPICH wheel
# (gives mpiexec), and dtnn itself with its compiled kernels and test dependencies.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}

# Debian packages: the Fashion-MNIST data, iproute2 (ip, tc) for the simulated
# cluster (launch/simcluster.sh) and chromium for the serve page's browser test; each
# only when missing.
apt_packages=()
[ -d /usr/share/datasets/fashion-mnist ] || apt_packages+=(dataset-fashion-mnist)
command -v tc >/dev/null 2>&1 || apt_packages+=(iproute2)
# the browser test of dtnn serve drives Debian's chromium (Playwright's download is offline)
[ -x /usr/bin/chromium ] || apt_packages+=(chromium)
if [ ${#apt_packages[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ]; then
        echo "setup: installing ${apt_packages[*]} (apt)"
        (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            "${apt_packages[@]}" >/dev/null) \
            || echo "setup: warning: apt could not install ${apt_packages[*]}; the tests that need them will be skipped"
    else
        echo "setup: warning: not root, skipping 'apt-get install ${apt_packages[*]}'"
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
