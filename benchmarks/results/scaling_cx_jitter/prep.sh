#!/usr/bin/env bash
# the trees and decision caches of the A/B (issue #17, helper-J):
#   /tmp/ij_before: main's dtnn/ + launch/ + benchmarks/ddp_peer.py ($1, default main),
#                   this tree's compiled kernels and .venv (no C change on this branch)
#   /tmp/ij_after:  this worktree's dtnn/ + launch/ + ddp_peer.py (the fix)
#   /tmp/ij_cache_before: a copy of ~/.cache/dtnn/tune as main's runs left it (h0 and
#                   h1 hold different winners for 4 of 26 decisions)
#   /tmp/ij_cache_after: the same copy; warm.sh lets the fixed tree re-tune it (agreed)
set -eu
W=/work/wt/jitter
REV=${1:-main}
rm -rf /tmp/ij_before /tmp/ij_after && mkdir -p /tmp/ij_before /tmp/ij_after
git -C /work/main archive "$REV" dtnn launch benchmarks/ddp_peer.py | tar -x -C /tmp/ij_before
cp $W/dtnn/_kernels/*.so /tmp/ij_before/dtnn/_kernels/
ln -s $W/.venv /tmp/ij_before/.venv
echo "main $(git -C /work/main rev-parse --short "$REV")" > /tmp/ij_before/COMMIT
(cd $W && tar -c dtnn launch benchmarks/ddp_peer.py) | tar -x -C /tmp/ij_after
ln -s $W/.venv /tmp/ij_after/.venv
echo "i17-jitter $(git -C $W rev-parse --short HEAD)+worktree $(date -u +%H:%M)" > /tmp/ij_after/COMMIT
rm -rf /tmp/ij_cache_before /tmp/ij_cache_after
cp -r ~/.cache/dtnn/tune /tmp/ij_cache_before
cp -r ~/.cache/dtnn/tune /tmp/ij_cache_after
cat /tmp/ij_before/COMMIT /tmp/ij_after/COMMIT
