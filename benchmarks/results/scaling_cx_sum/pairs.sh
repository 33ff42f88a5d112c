#!/usr/bin/env bash
# one quiet call: two before/after pairs, both orders (see ab.sh)
D=$(cd "$(dirname "$0")" && pwd)
$D/ab.sh "$1" before-first
$D/ab.sh "$2" after-first
