cd /work/wt/i18c
while pgrep -f "i18c/.venv/bin/python3 .venv/bin/pip" > /dev/null; do sleep 2; done
git log --oneline -1 | cut -c1-60
for spec in "2 1" "1 1" "2 2"; do set -- $spec; t=$1; i=$2
  for mode in after before; do
    if [ $mode = before ]; then export DTNN_FUSED_LIVE_MIN=101; else unset DTNN_FUSED_LIVE_MIN; fi
    echo "== t$t $mode $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
    timeout 150 .venv/bin/python benchmarks/bench_vs_torch.py --threads $t --rounds 5 --steps 10 --models vgg11_bn:width=0.5 --out /tmp/i18c/F4_${mode}${i}_t$t.md 2>&1 | grep "^| vgg" | head -1
  done
done
