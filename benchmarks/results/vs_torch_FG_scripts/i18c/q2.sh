cd /work/wt/i18c
for t in 1 2; do
  for mode in before after; do
    if [ $mode = before ]; then export DTNN_FUSED_LIVE_MIN=101; else unset DTNN_FUSED_LIVE_MIN; fi
    echo "== t$t $mode $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
    timeout 150 .venv/bin/python benchmarks/bench_vs_torch.py --threads $t --rounds 5 --steps 10 --models vgg11_bn:width=0.5 --out /tmp/i18c/F1_${mode}_t$t.md 2>&1 | tail -4
  done
done
