#!/usr/bin/env bash
# A simulated bandwidth-limited cluster on this machine (root only); see SIMCLUSTER.md.
#
#   launch/simcluster.sh up 4 1gbit [1ms]      # 4 hosts, 1 Gbit/s links (+ delay if netem)
#   launch/simcluster.sh selftest              # allreduce bandwidth vs the link rate
#   launch/simcluster.sh run -- -n 4 .venv/bin/python -m dtnn train -c configs/simplecnn.toml
#   launch/simcluster.sh status
#   launch/simcluster.sh down
#
# VENV (default .venv) selects the Python whose mpiexec and mpi4py are used.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
VENV=${VENV:-$here/../.venv}
if [ -x "$VENV/bin/python" ]; then
    PY="$VENV/bin/python"
elif command -v python3 >/dev/null 2>&1; then
    PY=$(command -v python3)
else
    echo "simcluster: error: no Python (set VENV=... to the dtnn virtualenv)" >&2; exit 2
fi
exec "$PY" "$here/simcluster.py" "$@"
