cd /work/wt/i18a; echo "start $(date -u +%H:%M:%S) $(cat /proc/loadavg)"
.venv/bin/python benchmarks/bench_vs_torch.py --threads 2 --rounds 7 --steps 10 --models vgg11_bn:width=0.5 --out /tmp/i18a/G_t2b.md
.venv/bin/python benchmarks/bench_vs_torch.py --threads 1 --rounds 7 --steps 10 --models vgg11_bn:width=0.5 --out /tmp/i18a/G_t1b.md
echo "end $(date -u +%H:%M:%S) $(cat /proc/loadavg)"
