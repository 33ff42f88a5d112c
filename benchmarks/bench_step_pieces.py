"""Per-step pieces of simplecnn's random-k training step, timed in one process (one
thread), each against what it replaced, alternating in the same run:

* random-k's index draw (4,025 of 402,442): numpy Generator.choice without replacement
  + sort (the previous draw) vs ``dtnn.rng.sample_sorted`` (compiled) and its twin;
* forward + backward of simplecnn at batch 16 with ``Model.pool_before_relu`` on / off;
* the guard's per-step work: ``add_loss`` with the logit spread, and the gradient norm.

    python benchmarks/bench_step_pieces.py --out /tmp/pieces.json [--repeats 5]

Medians in microseconds; never over a committed file unless --out says so.
"""
from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import numpy as np


def timed(fn, n):
    fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="JSON file to write")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()

    from dtnn.threads import set_threads
    set_threads(1)
    from dtnn import rng
    from dtnn.rng import twins
    from dtnn.compress.base import stream_key
    from dtnn.engine.guard import DivergenceGuard
    from dtnn.layers.loss import SoftmaxCrossEntropy
    from dtnn.models import build_model
    from dtnn.optim.clip import grad_norm
    from dtnn._kernels.isa import cpu_model

    n, k = 402_442, 4025
    step = [0]

    def old_draw():
        step[0] += 1
        gen = np.random.Generator(np.random.Philox(stream_key(0, 0x72616E646B, step[0], 0)))
        np.sort(gen.choice(n, k, replace=False)).astype(np.int32)

    def new_draw():
        step[0] += 1
        rng.sample_sorted(rng.stream(0, 0x72616E646B, step[0], 0), n, k)

    def twin_draw():
        step[0] += 1
        twins.sample_sorted(0, 0x72616E646B, step[0], 0, 0, n, k)

    model = build_model("simplecnn", (1, 28, 28), 10, seed=0, filters=32, hidden=64)
    x = np.random.default_rng(0).standard_normal((16, 1, 28, 28)).astype(np.float32)
    y = np.arange(16) % 10
    loss = SoftmaxCrossEntropy()

    def fwd_bwd(flag):
        def run():
            model.pool_before_relu = flag
            loss.forward(model.forward(x, True), y)
            model.backward(loss.backward())
        return run

    class _Ctx:
        def allreduce_sum(self, a):
            return a

    guard = DivergenceGuard(_Ctx(), 10, 3.0, 25, dead_steps=1000, warmup_steps=0)
    logits = np.random.default_rng(1).standard_normal((16, 10)).astype(np.float32)

    def add_loss():
        step[0] += 1
        guard.add_loss(2.0, step[0], 0.1, 3, logits)

    grads = np.random.default_rng(2).standard_normal(n).astype(np.float32)
    cases = {"draw: numpy choice + sort (before)": (old_draw, 300),
             "draw: dtnn.rng.sample_sorted (compiled)": (new_draw, 300),
             "draw: dtnn.rng twin (numpy)": (twin_draw, 100),
             "forward+backward, relu then maxpool (before)": (fwd_bwd(False), 200),
             "forward+backward, maxpool then relu": (fwd_bwd(True), 200),
             "guard add_loss (with logit spread)": (add_loss, 3000),
             "gradient norm (402k float32)": (lambda: grad_norm(grads), 1000)}
    samples = {name: [] for name in cases}
    for _ in range(args.repeats):          # alternating: every case once per round
        for name, (fn, reps) in cases.items():
            samples[name].append(timed(fn, reps))
    result = {"cpu": cpu_model(), "python": platform.python_version(),
              "repeats": args.repeats,
              "median_us": {name: round(statistics.median(v), 2) for name, v in samples.items()},
              "samples_us": {name: [round(s, 2) for s in v] for name, v in samples.items()}}
    with open(args.out, "w") as f:
        json.dump(result, f, indent=1)
    for name, v in result["median_us"].items():
        print(f"{v:10.1f} us  {name}")


if __name__ == "__main__":
    main()
