#!/usr/bin/env bash
# the "before" side: main's dtnn/ + launch/ + benchmarks/ddp_peer.py at $1 (default main's head)
# in /tmp/i17t_before, with this worktree's compiled kernels (no kernel changed) and .venv
set -eu
REV=${1:-main}
rm -rf /tmp/i17t_before && mkdir -p /tmp/i17t_before
git -C /work/main archive "$REV" dtnn launch benchmarks/ddp_peer.py | tar -x -C /tmp/i17t_before
cp /work/wt/tail/dtnn/_kernels/*.so /tmp/i17t_before/dtnn/_kernels/
ln -s /work/wt/tail/.venv /tmp/i17t_before/.venv
echo "main $(git -C /work/main rev-parse --short "$REV")" > /tmp/i17t_before/COMMIT
cat /tmp/i17t_before/COMMIT
