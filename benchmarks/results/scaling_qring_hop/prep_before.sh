#!/usr/bin/env bash
# the "before" side: main's dtnn/ + launch/ at $1 (default: main's head) in /tmp/i17e_before,
# with this tree's compiled kernels (the C change keeps every old entry point and its bits;
# the old Python path calls those) and this tree's .venv
set -eu
REV=${1:-main}
rm -rf /tmp/i17e_before && mkdir -p /tmp/i17e_before
git -C /work/main archive "$REV" dtnn launch benchmarks/ddp_peer.py | tar -x -C /tmp/i17e_before
cp /work/wt/i17e/dtnn/_kernels/*.so /tmp/i17e_before/dtnn/_kernels/
ln -s /work/wt/i17e/.venv /tmp/i17e_before/.venv
echo "main $(git -C /work/main rev-parse --short "$REV")" > /tmp/i17e_before/COMMIT
cat /tmp/i17e_before/COMMIT
