#!/usr/bin/env python
"""Per-layer convolution benchmark: every variant vs torch, forward / backward-data /
backward-weights, plus the variant BestOf picks.

    python benchmarks/bench_conv.py --threads 1 --batch 64 --out benchmarks/results/conv_t1_b64.md

Method: for each layer the variants are timed in interleaved rounds (variant A, B, C,
... then again), ``--rounds`` rounds after one warm-up call, and the median is
reported.  torch's passes are F.conv2d, torch.nn.grad.conv2d_input and conv2d_weight.
Our variants compute the gradients in one ``backward`` call, so backward-weights is
``backward(need_dx=False)`` and backward-data is ``backward(need_dx=True)`` minus that
(the difference of two medians).  Ratios are ours / torch's (lower is better).
The "BestOf" column runs the real online tuner (``bestof`` variant, training mode:
forward + backward timed together) until it settles.
"""
from __future__ import annotations

import _isa_env  # noqa: F401  -- first: --isa caps the libraries before they load

import argparse
import os
import sys
import time

import dtnn  # noqa: F401  -- first: it sets OpenBLAS's spin time before numpy loads it
import numpy as np

LAYERS = [
    # name, C, K, H, R, stride, pad
    ("vgg 3->64@32", 3, 64, 32, 3, 1, 1),
    ("vgg 64->64@32", 64, 64, 32, 3, 1, 1),
    ("vgg 64->128@16", 64, 128, 16, 3, 1, 1),
    ("vgg 128->128@16", 128, 128, 16, 3, 1, 1),
    ("vgg 128->256@8", 128, 256, 8, 3, 1, 1),
    ("vgg 256->256@8", 256, 256, 8, 3, 1, 1),
    ("vgg 256->512@4", 256, 512, 4, 3, 1, 1),
    ("simplecnn 1->32@28", 1, 32, 28, 3, 1, 1),
    ("lenet 1->32 5x5@28", 1, 32, 28, 5, 1, 0),
    ("lenet 32->64 5x5@12", 32, 64, 12, 5, 1, 0),
    ("1x1 64->128@32", 64, 128, 32, 1, 1, 0),
    ("1x1 128->256@16", 128, 256, 16, 1, 1, 0),
    ("s2 64->128@32", 64, 128, 32, 3, 2, 1),
    ("s2 128->256@16", 128, 256, 16, 3, 2, 1),
]
VARIANTS = ["im2col", "im2col1", "winograd2", "winograd4", "implicit", "direct", "torch"]


def _command() -> str:
    import shlex
    return "python benchmarks/bench_conv.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--layers", default="", help="comma-separated substrings to select")
    ap.add_argument("--no-bestof", action="store_true")
    ap.add_argument("--out", default="")
    _isa_env.add_argument(ap)
    args = ap.parse_args(argv)

    from dtnn.threads import set_threads
    set_threads(args.threads)
    import torch
    import dtnn.tune as T
    from dtnn.conv import CONV_ALGORITHMS, ConvGeometry

    os.environ.setdefault("DTNN_TUNE_CACHE", "/tmp/dtnn-bench-tune-cache-unused")
    T.configure(T.TuneOptions(rounds=3, warmup=1, use_cache=False))
    N = args.batch
    rng = np.random.default_rng(0)
    lines = [f"# Convolution variants per layer: {args.threads} thread(s), batch {N}", "",
             f"`{_command()}` ({time.strftime('%Y-%m-%d %H:%M')}, "
             f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores).", "",
             _isa_env.describe() + ".", "",
             "Times in ms (median of interleaved rounds); ratio = ours / torch "
             "(fwd, bwd-data, bwd-weights). `-` = variant does not support the layer or "
             "is not worth trying there (direct on large layers).", "",
             "| layer | variant | fwd | bwd-data | bwd-w | fwd/torch | bd/torch | bw/torch |",
             "|---|---|---|---|---|---|---|---|"]
    summary = ["", "| layer | fastest fwd+bwd (table) | BestOf pick (online) | "
                   "BestOf stats ms (fwd+bwd) |", "|---|---|---|---|"]
    for (name, C, K, H, R, st, pad) in LAYERS:
        if args.layers and not any(s in name for s in args.layers.split(",")):
            continue
        g = ConvGeometry(N, C, H, H, K, R, R, (st, st), (pad, pad))
        x = rng.standard_normal((N, C, H, H)).astype(np.float32)
        w = (rng.standard_normal((K, C, R, R)) * 0.1).astype(np.float32)
        b = np.zeros(K, np.float32)
        ho, wo = g.out_hw
        dy = rng.standard_normal((N, K, ho, wo)).astype(np.float32)
        algs = {}
        for v in VARIANTS:
            a = CONV_ALGORITHMS.get(v)()
            if a.supports(g) and (a.worth_tuning(g) or v == "im2col"):
                algs[v] = a
        xt, wt, dyt = (torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(dy))
        kw = dict(stride=g.stride, padding=g.padding)

        def run(v, a, what):
            if v == "torch":
                with torch.no_grad():
                    if what == "f":
                        torch.nn.functional.conv2d(xt, wt, torch.from_numpy(b), **kw)
                    elif what == "bw":
                        torch.nn.grad.conv2d_weight(xt, wt.shape, dyt, **kw)
                    else:
                        torch.nn.grad.conv2d_input(xt.shape, wt, dyt, **kw)
                return
            if what == "f":
                a.forward(x, w, b, g)
            else:
                dw = np.empty_like(w)
                db = np.empty_like(b)
                a.backward(dy, x, w, g, what == "bfull", dw, db)

        times = {(v, p): [] for v in algs for p in ("f", "bd", "bw", "bfull")}
        for rnd in range(args.rounds + 1):
            for v, a in algs.items():
                for p in ("f", "bw", "bfull") if v != "torch" else ("f", "bd", "bw"):
                    t0 = time.perf_counter()
                    run(v, a, p)
                    dt = time.perf_counter() - t0
                    if rnd > 0:
                        times[(v, p)].append(dt)
        med = {k: float(np.median(t)) * 1e3 for k, t in times.items() if t}
        res = {}
        for v in algs:
            if v == "torch":
                f, bd, bw = med[(v, "f")], med[(v, "bd")], med[(v, "bw")]
            else:
                f, bw = med[(v, "f")], med[(v, "bw")]
                bd = max(med[(v, "bfull")] - bw, 0.0)
            res[v] = (f, bd, bw)
        tf, tbd, tbw = res["torch"]
        for v, (f, bd, bw) in res.items():
            lines.append(f"| {name} | {v} | {f:.2f} | {bd:.2f} | {bw:.2f} | {f / tf:.2f} | "
                         f"{(bd / tbd if tbd else 0):.2f} | {bw / tbw:.2f} |")
        best = min(res, key=lambda v: sum(res[v]))
        pick, stats = "-", ""
        if not args.no_bestof:
            bo_alg = CONV_ALGORITHMS.get("bestof")()
            bo_alg.training = True
            key = bo_alg.key(g, True)
            for _ in range(60):
                bo_alg.forward(x, w, b, g)
                bo_alg.backward(dy, x, w, g, True, np.empty_like(w), np.empty_like(b))
                if bo_alg.tuner().settled(key):
                    break
            tuner = bo_alg.tuner()
            pick = tuner.winner(key) or "unsettled"
            if pick == "winograd":
                pick += "/" + str(T.tuners()["winograd_tile"].winner(key))
            stats = ", ".join(f"{n}={s * 1e3:.1f}" for n, s in
                              sorted(tuner.state(key).stats.items(), key=lambda kv: kv[1]))
        summary.append(f"| {name} | {best} | {pick} | {stats} |")
        print(lines[-len(res)], "...", summary[-1], flush=True)
    text = "\n".join(lines + summary) + "\n"
    if args.out:
        from dtnn.io import atomic
        atomic.write_text(args.out, text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
