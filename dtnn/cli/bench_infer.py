"""``dtnn bench infer CHECKPOINT``: batch-1 / batch-N inference latency and peak memory
of dtnn, PyTorch eager and ONNX Runtime on the same model, in one run::

    dtnn bench infer runs/p20/pruned.h5 --batch 64 --json -
"""
from __future__ import annotations

import argparse
import json


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a dtnn checkpoint (trained or pruned)")
    p.add_argument("--batch", type=int, default=64, help="the batch-N size (default 64)")
    p.add_argument("--threads", type=int, action="append", metavar="N",
                   help="thread count, repeatable (default: 1 and all cores)")
    p.add_argument("--engine", action="append",
                   choices=("dtnn", "dtnn-layers", "torch", "onnxruntime"),
                   help="engines, repeatable (default: all four; dtnn = the fused inference "
                   "plan, dtnn-layers = layer by layer as in training)")
    p.add_argument("--reps", type=int, default=200, help="timed batch-1 calls (default 200)")
    p.add_argument("--reps-n", type=int, default=20, help="timed batch-N calls (default 20)")
    p.add_argument("--budget", type=float, default=20.0,
                   help="at most this many seconds of timed calls per batch size (default 20)")
    p.add_argument("--conv", default="bestof",
                   help="dtnn-layers' convolution variant: bestof (default, tuned before timing), "
                   "as-saved, im2col, winograd, ...")
    p.add_argument("--onnx", metavar="FILE", help="keep the exported ONNX file here")
    p.add_argument("--json", metavar="FILE", help="write the result as JSON ('-' = stdout)")
    p.add_argument("--markdown", metavar="FILE", help="also write the markdown table here")


def run(args) -> int:
    from dtnn.bench.infer import ENGINES, bench_infer, markdown
    from dtnn.errors import UserError
    from dtnn.log import setup_logging

    setup_logging(0, 1, getattr(args, "verbose", False))
    for name, value, low in (("--batch", args.batch, 1), ("--reps", args.reps, 1),
                             ("--reps-n", args.reps_n, 1)):
        if value < low:
            raise UserError(f"{name} must be >= {low}, got {value}")
    if args.threads and min(args.threads) < 1:
        raise UserError(f"--threads must be >= 1, got {min(args.threads)}")
    if args.conv not in ("as-saved", "bestof"):
        from dtnn.conv import CONV_ALGORITHMS
        CONV_ALGORITHMS.get(args.conv)
    from dtnn.io.checkpoint import read_config
    read_config(args.checkpoint)        # a one-line error before any child starts
    result = bench_infer(args.checkpoint, batch=args.batch, threads=args.threads,
                         engines=args.engine or ENGINES, reps=args.reps, reps_n=args.reps_n,
                         budget_s=args.budget, conv=args.conv, onnx_path=args.onnx)
    table = markdown(result)
    if args.json == "-":
        print(json.dumps(result, indent=2))
    else:
        print(table)
        if args.json:
            with open(args.json, "w") as fh:
                json.dump(result, fh, indent=2)
    if args.markdown:
        with open(args.markdown, "w") as fh:
            fh.write(table + "\n")
    return 0
