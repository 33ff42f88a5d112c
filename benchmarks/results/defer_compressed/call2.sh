#!/usr/bin/env bash
# the second quiet call: pairs 5 (sync-first) and 6 (defer-first) at 2 hosts (every
# rank's deferred waits recorded), TernGrad and int8 with 1 MiB buckets (pair b1_7,
# sync-first), one pair at 4 hosts (pair 4h_8, sync-first)
set -u
D=$(cd "$(dirname "$0")" && pwd)
uptime
bash "$D/pair.sh" "$D/pair_5" sync-first
bash "$D/pair.sh" "$D/pair_6" defer-first
EXTRA=,bucket_mb=1 ONLY="terngrad int8" bash "$D/pair.sh" "$D/pair_b1_7" sync-first
bash "$D/pair.sh" "$D/pair_4h_8" sync-first 4
uptime
