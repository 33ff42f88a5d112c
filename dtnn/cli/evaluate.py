"""``dtnn eval``: metrics of a checkpoint on the test (or train) split of a dataset.

The dataset, preprocessing and class names come from the checkpoint's saved config;
``--set data.source=...`` etc. evaluates on something else.
"""
from __future__ import annotations

import argparse
import json

from dtnn.log import get_logger, setup_logging


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="checkpoint.h5 written by dtnn train")
    p.add_argument("--set", "-s", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="override the saved data config, e.g. data.path=DIR")
    p.add_argument("--split", choices=("test", "train"), default="test")
    p.add_argument("--out", metavar="FILE", help="also write the report as JSON here")


def run(args) -> int:
    from dtnn.config import apply_dict, parse_override
    from dtnn.parallel import get_context
    from dtnn.engine.session import config_from_checkpoint, load_data
    from dtnn.engine.trainer import Trainer
    from dtnn.errors import UserError
    from dtnn.io.checkpoint import load_checkpoint
    from dtnn.metrics import format_confusion, format_report
    from dtnn.threads import default_threads, set_threads

    ctx = get_context()
    setup_logging(ctx.rank, ctx.size)
    set_threads(default_threads(ctx.local_size))
    cfg = config_from_checkpoint(args.checkpoint)
    for item in args.overrides:
        apply_dict(cfg, parse_override(item), f"--set {item}")
    ckpt = load_checkpoint(args.checkpoint)
    data = load_data(cfg, ckpt.meta.get("normalization"))
    ds = data.test if args.split == "test" else data.train
    if ds is None:
        raise UserError(f"data source '{cfg.data.source}' has no {args.split} split")
    if ds.x.shape[1:] != ckpt.model.input_shape:
        raise UserError(f"{args.checkpoint}: model expects inputs {ckpt.model.input_shape}, "
                        f"data has {ds.x.shape[1:]}")
    evaluator = Trainer(ckpt.model, None, None, None, ctx, epochs=0, progress=False)
    ev = evaluator.evaluate(ds)
    if ctx.is_root:
        print(format_report(ev["report"]))
        print(format_confusion(ev["confusion"], ds.classes))
        if args.out:
            report = dict(ev["report"], loss=ev["loss"], confusion=ev["confusion"].tolist())
            with open(args.out, "w") as fh:
                json.dump(report, fh, indent=2)
            get_logger().info(f"report written to {args.out}")
    return 0
