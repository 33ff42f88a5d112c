#!/usr/bin/env bash
# the "before" side: main's dtnn/ + launch/ at $1 (default: main's head) in /tmp/i17a_before,
# with this tree's compiled kernels as built at the session's start (main's: copied at 21:54,
# before the C change that was tried and dropped) and this tree's .venv
set -eu
REV=${1:-main}
rm -rf /tmp/i17a_before && mkdir -p /tmp/i17a_before
git -C /work/main archive "$REV" dtnn launch benchmarks/ddp_peer.py | tar -x -C /tmp/i17a_before
cp /work/wt/a/dtnn/_kernels/*.so /tmp/i17a_before/dtnn/_kernels/
ln -s /work/wt/a/.venv /tmp/i17a_before/.venv
echo "main $(git -C /work/main rev-parse --short "$REV")" > /tmp/i17a_before/COMMIT
cat /tmp/i17a_before/COMMIT
