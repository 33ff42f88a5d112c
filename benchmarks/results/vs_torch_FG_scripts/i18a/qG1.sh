cd /work/wt/i18a; echo "start $(date -u +%H:%M:%S) $(cat /proc/loadavg)"; git log --oneline -1 | cut -c1-60
.venv/bin/python benchmarks/bench_vs_torch.py --threads 1 --rounds 7 --steps 10 --models simplecnn lenet vgg11_bn:width=0.5 cnet --out /tmp/i18a/G_t1.md
.venv/bin/python benchmarks/bench_vs_torch.py --threads 1 --rounds 3 --steps 3 --models vgg16_bn:input=3x32x32 --out /tmp/i18a/G_t1.md
echo "end $(date -u +%H:%M:%S) $(cat /proc/loadavg)"
