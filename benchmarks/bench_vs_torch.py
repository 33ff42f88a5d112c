"""Time one training step (forward, loss, backward, SGD+momentum update) in dtnn and in
PyTorch for the same architecture, weights, batch and thread count; print the ratio.

    python benchmarks/bench_vs_torch.py --models simplecnn lenet --threads 1 \
        --out benchmarks/results/vs_torch.md

Rounds alternate dtnn and torch so machine noise hits both alike; the median step time
of each is reported.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import dtnn  # noqa: F401  -- first: it sets OpenBLAS's spin time before numpy loads it
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def dtnn_stepper(model, x, y, lr=0.01):
    from dtnn.layers.loss import SoftmaxCrossEntropy
    from dtnn.optim import build_optimizer
    loss = SoftmaxCrossEntropy()
    opt = build_optimizer("sgd", model, lr=lr, momentum=0.9)

    def step():
        out = model.forward(x, training=True)
        value = loss.forward(out, y)
        model.backward(loss.backward())
        opt.step()
        return value
    return step


def torch_stepper(net, x, y, lr=0.01):
    import torch
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=0.9)
    lossf = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=False)
        value = lossf(net(xt), yt)
        value.backward()
        opt.step()
        return float(value)
    return step


def bench_model(name, batch, rounds, steps):
    import torch
    from dtnn.models import build_model
    from torch_twin import torch_twin
    model = build_model(name, (1, 28, 28), 10, seed=0)
    net = torch_twin(model)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, batch).astype(np.int64)
    with torch.no_grad():
        ref = torch.nn.functional.cross_entropy(net(torch.from_numpy(x)), torch.from_numpy(y))
    ours, theirs = dtnn_stepper(model, x, y), torch_stepper(net, x, y)
    first = ours()
    assert abs(first - float(ref)) < 1e-4 * max(1.0, abs(first)), (first, float(ref))
    theirs()
    times = {"dtnn": [], "torch": []}
    for _ in range(rounds):
        for label, fn in (("dtnn", ours), ("torch", theirs)):
            start = time.perf_counter()
            for _ in range(steps):
                fn()
            times[label].append((time.perf_counter() - start) / steps)
    return {k: float(np.median(v)) for k, v in times.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["simplecnn", "lenet"])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--out", help="write a markdown table here")
    args = ap.parse_args()
    from dtnn.threads import set_threads
    set_threads(args.threads)
    rows = []
    for name in args.models:
        t = bench_model(name, args.batch, args.rounds, args.steps)
        ratio = t["dtnn"] / t["torch"]
        rows.append(f"| {name} | {args.batch} | {args.threads} | {t['dtnn'] * 1e3:.2f} | "
                    f"{t['torch'] * 1e3:.2f} | {ratio:.2f} |")
        print(rows[-1], flush=True)
    table = ["| model | batch | threads | dtnn ms/step | torch ms/step | dtnn / torch |",
             "|---|---:|---:|---:|---:|---:|"] + rows
    if args.out:
        cmd = "python " + " ".join([os.path.relpath(__file__)] + sys.argv[1:])
        with open(args.out, "a") as fh:
            fh.write(f"\nCommand: `{cmd}`  ({time.strftime('%Y-%m-%d %H:%M')}, "
                     f"median of {args.rounds} rounds x {args.steps} steps)\n\n")
            fh.write("\n".join(table) + "\n")
    print("\n".join(table))


if __name__ == "__main__":
    main()
