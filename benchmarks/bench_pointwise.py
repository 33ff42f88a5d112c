#!/usr/bin/env python
"""1x1 (pointwise) convolutions: where the time goes, per way of computing each pass.

    python benchmarks/bench_pointwise.py --threads 1 --out /tmp/pointwise_t1.md
    python benchmarks/bench_pointwise.py --threads 2 --isa avx2 --out /tmp/pw_avx2_t2.md

A stride-1 1x1 convolution is a GEMM per image, Y_n (K, P) = W (K, C) X_n (C, P), with
P = H*W pixels.  Ways to run each pass, timed in interleaved rounds (median, ms):

  forward     per-image  numpy matmul broadcast over the batch: N GEMMs of K x C x P
              one-gemm   NCHW -> (C, N*P) copy, one GEMM of K x C x N*P, copy back
              fused      dtnn's fused kernel (pixels x 64-channel tiles, no GEMM library)
  bwd-data    per-image  dX_n = W^T dY_n, N GEMMs
              fused      the fused forward on dY with W^T
  bwd-weights per-image  dW = sum_n dY_n X_n^T in chunks (what im2col did)
              one-gemm   dY and X as (K|C, N*P) copies, one GEMM with inner size N*P
              fused      dtnn's fused backward-weights
  torch       F.conv2d / conv2d_input / conv2d_weight

plus ``im2col`` (the variant as it runs now) and the GEMM rate of each (GFLOP/s).
"""
from __future__ import annotations

import _isa_env  # noqa: F401  -- first: --isa caps the libraries before they load

import argparse
import os
import sys
import time

import dtnn  # noqa: F401  -- before numpy: OpenBLAS's spin time
import numpy as np

LAYERS = [  # name, C, K, H
    ("64->128@32", 64, 128, 32),
    ("128->256@16", 128, 256, 16),
    ("256->64@8", 256, 64, 8),
    ("16->96@14", 16, 96, 14),
    ("96->24@14", 96, 24, 14),
    ("144->32@7", 144, 32, 7),
    ("384->64@4", 384, 64, 4),
]


def _median_ms(fns, rounds):
    times = {k: [] for k in fns}
    for r in range(rounds + 1):
        for k, f in fns.items():
            t0 = time.perf_counter()
            f()
            if r:
                times[k].append(time.perf_counter() - t0)
    return {k: float(np.median(v)) * 1e3 for k, v in times.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--layers", default="", help="comma-separated substrings to select")
    ap.add_argument("--out", default="", help="markdown output (default: print only)")
    _isa_env.add_argument(ap)
    args = ap.parse_args(argv)

    from dtnn.threads import set_threads
    set_threads(args.threads)
    import torch
    from dtnn.conv import CONV_ALGORITHMS, ConvGeometry
    from dtnn.conv import im2col as im2col_mod

    fused = im2col_mod.fused_available()
    N = args.batch
    rng = np.random.default_rng(0)
    lines = [f"# 1x1 convolutions: {args.threads} thread(s), batch {N}", "",
             f"`python benchmarks/bench_pointwise.py {' '.join(sys.argv[1:])}` "
             f"({time.strftime('%Y-%m-%d %H:%M')}, load average {os.getloadavg()[0]:.1f}).",
             "", _isa_env.describe() + f"; fused path: {im2col_mod.fused_isa()}", "",
             "ms, median of interleaved rounds; GF/s = 2 N K C P / time.", "",
             "| layer | pass | per-image | one-gemm | fused | im2col variant | torch | "
             "im2col / torch | best / torch | GF/s of best |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, C, K, H in LAYERS:
        if args.layers and not any(s in name for s in args.layers.split(",")):
            continue
        P = H * H
        g = ConvGeometry(N, C, H, H, K, 1, 1)
        x = rng.standard_normal((N, C, H, H)).astype(np.float32)
        w = (rng.standard_normal((K, C, 1, 1)) * 0.1).astype(np.float32)
        dy = rng.standard_normal((N, K, H, H)).astype(np.float32)
        w2 = w.reshape(K, C)
        x3, dy3 = x.reshape(N, C, P), dy.reshape(N, K, P)
        y = np.empty((N, K, H, H), np.float32)
        alg = CONV_ALGORITHMS.get("im2col")()
        xt, wt, dyt = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(dy)
        xc = np.empty((C, N * P), np.float32)
        yc = np.empty((K, N * P), np.float32)
        dyc = np.empty((K, N * P), np.float32)

        def fwd_one():
            xc.reshape(C, N, P)[...] = x3.transpose(1, 0, 2)
            np.matmul(w2, xc, out=yc)
            y.reshape(N, K, P)[...] = yc.reshape(K, N, P).transpose(1, 0, 2)

        def bww_chunks():
            dw = np.empty((K, C), np.float32)
            alg._backward_pointwise(dy3, x, w2.reshape(1, K, C), g, dw.reshape(1, K, C), None)

        def bww_one():
            xc.reshape(C, N, P)[...] = x3.transpose(1, 0, 2)
            dyc.reshape(K, N, P)[...] = dy3.transpose(1, 0, 2)
            np.matmul(dyc, xc.T)

        passes = {
            "forward": {"per-image": lambda: np.matmul(w2, x3, out=y.reshape(N, K, P)),
                        "one-gemm": fwd_one,
                        "im2col": lambda: alg.forward(x, w, None, g),
                        "torch": lambda: torch.nn.functional.conv2d(xt, wt)},
            "bwd-data": {"per-image": lambda: np.matmul(w2.T, dy3),
                         "im2col": lambda: None,
                         "torch": lambda: torch.nn.grad.conv2d_input(xt.shape, wt, dyt)},
            "bwd-weights": {"per-image": bww_chunks, "one-gemm": bww_one,
                            "im2col": lambda: alg.backward(dy, x, w, g, False,
                                                           np.empty_like(w), None),
                            "torch": lambda: torch.nn.grad.conv2d_weight(xt, wt.shape, dyt)},
        }
        if fused:
            ext = im2col_mod.fused_forward
            passes["forward"]["fused"] = lambda: ext(x, w, None, 1, 1, 0, 0, 1, 1, 1)
            passes["bwd-data"]["fused"] = lambda: im2col_mod.fused_backward_data(
                dy, w, H, H, 0, 0, 1, 1, 1)
            passes["bwd-weights"]["fused"] = lambda: im2col_mod.fused_backward_weights(
                dy, x, 1, 1, 1, 1, 0, 0, 1, 1, 1)
        # the im2col variant's backward-data: full backward minus backward-weights
        full = _median_ms({"b": lambda: alg.backward(dy, x, w, g, True, np.empty_like(w),
                                                     None)}, args.rounds)["b"]
        flops = 2.0 * N * K * C * P
        with torch.no_grad():
            for pname, fns in passes.items():
                t = _median_ms(fns, args.rounds)
                if pname == "bwd-data":
                    bw = _median_ms({"w": passes["bwd-weights"]["im2col"]}, args.rounds)["w"]
                    t["im2col"] = max(full - bw, 0.0)
                ours = {k: v for k, v in t.items() if k not in ("torch", "im2col")}
                best = min(ours, key=ours.get)
                cell = lambda k: f"{t[k]:.2f}" if k in t else "-"  # noqa: E731
                lines.append(f"| {name} | {pname} | {cell('per-image')} | {cell('one-gemm')} | "
                             f"{cell('fused')} | {cell('im2col')} | {cell('torch')} | "
                             f"**{t['im2col'] / t['torch']:.2f}** | "
                             f"{best} {t[best] / t['torch']:.2f} | "
                             f"{flops / t[best] / 1e6:.0f} |")
                print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    if args.out:
        from dtnn.io import atomic
        atomic.write_text(args.out, text)
    print(text)


if __name__ == "__main__":
    sys.exit(main())
