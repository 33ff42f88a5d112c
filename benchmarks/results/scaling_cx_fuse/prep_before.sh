#!/usr/bin/env bash
# the "before" side: main's dtnn/ + launch/ + benchmarks/ddp_peer.py at $1 (default main's
# head) in /tmp/i17f_before, with this tree's compiled kernels (every old entry point keeps
# its bits; the only C change on old files adds dtnn_sgd_range_f32) and this tree's .venv
set -eu
REV=${1:-main}
rm -rf /tmp/i17f_before && mkdir -p /tmp/i17f_before
git -C /work/main archive "$REV" dtnn launch benchmarks/ddp_peer.py | tar -x -C /tmp/i17f_before
cp /work/wt/fuse/dtnn/_kernels/*.so /tmp/i17f_before/dtnn/_kernels/
ln -s /work/wt/fuse/.venv /tmp/i17f_before/.venv
echo "main $(git -C /work/main rev-parse --short "$REV")" > /tmp/i17f_before/COMMIT
cat /tmp/i17f_before/COMMIT
