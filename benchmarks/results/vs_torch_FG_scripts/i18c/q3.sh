cd /work/wt/i18c
for t in 1 2; do echo "== t$t $(date +%T) load $(cut -d' ' -f1-3 /proc/loadavg)"; timeout 200 .venv/bin/python benchmarks/profile_step.py --model vgg11_bn:width=0.5 --threads $t --reps 9 2>&1; done
