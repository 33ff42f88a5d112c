cd /work/wt/i18c
echo "== $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
for t in 1 2; do timeout 150 .venv/bin/python /tmp/i18c/livebench2.py $t 13; done
for i in 1 2; do
  for mode in after before; do
    if [ $mode = before ]; then export DTNN_FUSED_LIVE_MIN=101; else unset DTNN_FUSED_LIVE_MIN; fi
    echo "== t2 $mode $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"
    timeout 150 .venv/bin/python benchmarks/bench_vs_torch.py --threads 2 --rounds 5 --steps 10 --models vgg11_bn:width=0.5 --out /tmp/i18c/F3_${mode}${i}_t2.md 2>&1 | grep "^| vgg" | head -1
  done
done
