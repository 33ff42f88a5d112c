#!/usr/bin/env bash
# the third quiet call, after the BN buffers' wait moved into the next forward: pairs 9
# (sync-first) and 10 (defer-first) at 2 hosts, 4h_11 (defer-first) and 4h_12
# (sync-first) at 4 hosts
set -u
D=$(cd "$(dirname "$0")" && pwd)
uptime
bash "$D/pair.sh" "$D/pair_9" sync-first
bash "$D/pair.sh" "$D/pair_10" defer-first
bash "$D/pair.sh" "$D/pair_4h_11" defer-first 4
bash "$D/pair.sh" "$D/pair_4h_12" sync-first 4
uptime
