"""``dtnn eval``: metrics of a checkpoint on the test (or train) split of a dataset.

The dataset, normalisation statistics and class names come from the checkpoint (read
once); the test split needs no training files.  ``--set data.source=...`` etc.
evaluates on something else.  The work is ``dtnn.engine.evaluate.evaluate_checkpoint``.
"""
from __future__ import annotations

import argparse

from dtnn.log import get_logger, setup_logging


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="checkpoint.h5 written by dtnn train")
    p.add_argument("--set", "-s", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="override the saved data config, e.g. data.path=DIR")
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--out", metavar="FILE", help="also write the report as JSON here")


def run(args) -> int:
    from dtnn.cli._checks import checkpoint_file, writable_output, write_text
    from dtnn.config import reject_overrides
    checkpoint_file(args.checkpoint)   # before numpy, h5py or MPI load
    if args.out:
        writable_output(args.out, "--out")
    reject_overrides(args.overrides, allowed=("data",), command="dtnn eval")
    from dtnn.engine.evaluate import evaluate_checkpoint
    from dtnn.parallel import get_context
    from dtnn.threads import default_threads, set_threads

    ctx = get_context()
    setup_logging(ctx.rank, ctx.size)
    set_threads(default_threads(ctx.local_size))
    ev = evaluate_checkpoint(args.checkpoint, split=args.split, overrides=args.overrides,
                             ctx=ctx)
    if ctx.is_root:
        print(ev.text())
        if args.out:
            write_text(args.out, ev.to_json(), "--out")
            get_logger().info(f"report written to {args.out}")
    return 0
