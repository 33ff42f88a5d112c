#!/usr/bin/env bash
# one quiet call: pairs FIRST..LAST, alternating the order (odd ids sync-first);
#   call.sh FIRST LAST [HOSTS...]
set -u
D=$(cd "$(dirname "$0")" && pwd)
first=$1; last=$2; shift 2
uptime
for i in $(seq "$first" "$last"); do
  o=sync-first; [ $((i % 2)) = 0 ] && o=defer-first
  bash "$D/pair.sh" "$D/pair_$i" $o "$@"
done
uptime
