#!/usr/bin/env python
"""End-to-end: VGG training steps with BestOf vs fixed convolution variants.

    python benchmarks/bench_conv_e2e.py --model vgg16_bn --threads 1 --steps 40 \\
        --out benchmarks/results/conv_e2e.md

One model per variant (same seed, same data) runs training steps (forward, softmax
cross-entropy, backward; no optimizer update -- identical for every variant) in
interleaved order: step i of every variant, then step i+1, so machine-load drift hits
all variants alike.  ``bestof`` starts from an empty tuning cache, so its first steps
include the online tuning.  Reported: median step time over the second half of the
steps (all choices settled), ratios, and BestOf's tuning cost (time beyond what the
tuned BestOf would have taken for the same steps) as a share of a projected full
epoch (``--epoch-samples`` / batch steps at the tuned speed).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import dtnn  # noqa: F401  -- first: it sets OpenBLAS's spin time before numpy loads it
import numpy as np


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="vgg16_bn")
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--variants", default="torch,im2col,winograd,implicit,bestof")
    ap.add_argument("--epoch-samples", type=int, default=50000)
    ap.add_argument("--rounds", type=int, default=3, help="BestOf rounds")
    ap.add_argument("--out", default="")
    args = ap.parse_args(argv)

    os.environ["DTNN_TUNE_CACHE"] = tempfile.mkdtemp(prefix="dtnn-e2e-tune-")
    from dtnn.threads import set_threads
    set_threads(args.threads)
    import dtnn.tune as T
    from dtnn.layers.loss import SoftmaxCrossEntropy
    from dtnn.models import build_model
    from dtnn.tune.report import format_report

    T.configure(T.TuneOptions(rounds=args.rounds, warmup=1))
    variants = args.variants.split(",")
    models = {v: build_model(args.model, (3, 32, 32), 10, seed=0, width=args.width,
                             conv_algorithm=v) for v in variants}
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.batch, 3, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, args.batch)
    loss = SoftmaxCrossEntropy()
    times = {v: [] for v in variants}
    settled_at = None
    for step in range(args.steps):
        for v in variants:
            m = models[v]
            t0 = time.perf_counter()
            out = m.forward(x, training=True)
            loss.forward(out, y)
            m.backward(loss.backward())
            times[v].append(time.perf_counter() - t0)
        if "bestof" in variants and settled_at is None:
            conv = T.tuners().get("conv")
            if conv is not None and all(st.settled for st in conv._states.values()) and all(
                    st.settled for st in T.tuners()["winograd_tile"]._states.values()):
                settled_at = step + 1
        print(f"step {step}: " + " ".join(f"{v}={times[v][-1]:.2f}s" for v in variants),
              flush=True)
    half = args.steps // 2
    med = {v: float(np.median(times[v][half:])) for v in variants}
    lines = [f"# End-to-end: {args.model} (width {args.width}) on 3x32x32, batch {args.batch}, "
             f"{args.threads} thread(s)", "",
             f"`python benchmarks/bench_conv_e2e.py --model {args.model} --width {args.width} "
             f"--threads {args.threads} --steps {args.steps} --rounds {args.rounds} "
             f"--variants {args.variants}` "
             f"({time.strftime('%Y-%m-%d %H:%M')}, load average {os.getloadavg()[0]:.1f} on "
             f"{os.cpu_count()} cores)", "",
             "Training step = forward + loss + backward; median of steps "
             f"{half}..{args.steps - 1} (interleaved across variants).", "",
             "| variant | step s (median) | vs torch | vs bestof |", "|---|---|---|---|"]
    for v in variants:
        lines.append(f"| {v} | {med[v]:.3f} | {med[v] / med.get('torch', med[v]):.2f} | "
                     f"{(med[v] / med['bestof']) if 'bestof' in med else float('nan'):.2f} |")
    if "bestof" in variants:
        steps_epoch = args.epoch_samples // args.batch
        fixed = [v for v in variants if v != "bestof"]
        best_fixed = min(fixed, key=lambda v: med[v])
        tuned = med["bestof"]
        n_tune = settled_at or args.steps
        cost = sum(times["bestof"][:n_tune]) - n_tune * tuned
        epoch = steps_epoch * tuned
        lines += ["",
                  f"- speed-up of BestOf over torch forced everywhere: **{med['torch'] / tuned:.2f}x**"
                  if "torch" in med else "",
                  f"- BestOf vs best single fixed variant ({best_fixed}): "
                  f"{(tuned / med[best_fixed] - 1) * 100:+.1f}% step time",
                  f"- BestOf settled after {settled_at} steps; tuning cost {cost:.1f} s = "
                  f"{cost / epoch * 100:.1f}% of a projected first epoch of {steps_epoch} "
                  f"steps ({epoch:.0f} s at the tuned speed)", "",
                  "BestOf decisions:", "", "```", format_report([r for r in T.collect() if r["tuner"] != "transpose"]).rstrip(), "```"]
    text = "\n".join(lines) + "\n"
    if args.out:
        with open(args.out, "w") as fh:
            fh.write(text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
