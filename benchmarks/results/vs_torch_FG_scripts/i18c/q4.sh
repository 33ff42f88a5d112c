cd /work/wt/i18c
for t in 2 1; do
  for mode in after before; do
    if [ $mode = before ]; then export DTNN_FUSED_LIVE_MIN=101; else unset DTNN_FUSED_LIVE_MIN; fi
    echo "== t$t $mode $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
    timeout 200 .venv/bin/python benchmarks/bench_vs_torch.py --threads $t --rounds 7 --steps 10 --models vgg11_bn:width=0.5 --out /tmp/i18c/F2_${mode}_t$t.md 2>&1 | grep "^| vgg"
  done
done
