#!/usr/bin/env bash
# #17 dist.defer_update elsewhere: uncompressed vgg11_bn w0.5 on 2 and 4 hosts at
# LINK (default 1gbit), the synchronous step against the deferred update, tuned default
# (root; run under /work/bin/quiet holding the cluster lock):
#   benchmarks/vgg_defer.sh OUTDIR [LINK] [STEPS]
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/dtnn bench scaling --out "$1" --frameworks dtnn \
    --models vgg11_bn:width=0.5 --hosts 2 4 --links "${2:-1gbit}" --modes none overlap \
    --steps "${3:-30}" --compress 'none|defer_update=false' 'none|defer_update=true'
