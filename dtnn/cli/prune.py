"""``dtnn prune CHECKPOINT --keep FRACTION``: Taylor (or L1/random) feature-map pruning
with fine-tuning, alone or under ``mpiexec -n N``; writes RUN_DIR/pruned.h5.

The configuration is the checkpoint's saved one (or ``--config FILE``) with the
``[prune]`` section and ``--set`` overrides applied, e.g.::

    dtnn prune runs/cnet/checkpoint.h5 --keep 0.2 --criterion taylor --run-dir runs/p20 \\
        --set prune.finetune_steps=100 --set prune.step_fraction=0.05
"""
from __future__ import annotations

import argparse

from dtnn.log import get_logger, setup_logging


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="checkpoint.h5 of a trained model")
    p.add_argument("--keep", type=float, metavar="FRACTION",
                   help="fraction of the conv feature maps (or of prune.target) to keep, "
                   "in (0, 1] (shortcut for --set prune.keep=...)")
    p.add_argument("--criterion", metavar="NAME",
                   help="taylor (default), l1 or random (shortcut for --set prune.criterion=)")
    p.add_argument("--config", "-c", metavar="FILE",
                   help="TOML config (default: the checkpoint's saved config)")
    p.add_argument("--set", "-s", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="override a config value, e.g. "
                   "prune.finetune_steps=100 (repeatable)")
    p.add_argument("--run-dir", metavar="DIR", help="output directory (default runs/prune)")
    p.add_argument("--compress", metavar="SPEC",
                   help="gradient compression during fine-tuning, e.g. topk:ratio=0.01")
    p.add_argument("--resume", action="store_true",
                   help="continue the interrupted run in --run-dir (its prune_state.h5)")


def resolve_config(args):
    from dtnn.cli.train import _quote
    from dtnn.config import apply_dict, load_config, parse_override, validate
    from dtnn.engine.session import config_from_checkpoint
    overrides = list(args.overrides)
    overrides.append(f"output.run_dir={_quote(args.run_dir or 'runs/prune')}")
    if args.keep is not None:
        overrides.append(f"prune.keep={args.keep!r}")
    if args.criterion:
        overrides.append(f"prune.criterion={_quote(args.criterion)}")
    if args.compress:
        overrides.append(f"dist.compress={_quote(args.compress)}")
    if args.config:
        cfg = load_config(args.config, overrides)
    else:
        cfg = config_from_checkpoint(args.checkpoint)
        for item in overrides:
            apply_dict(cfg, parse_override(item), f"--set {item}")
        validate(cfg)
    cfg.prune.validate()
    return cfg


def run(args) -> int:
    from dtnn.parallel import get_context
    from dtnn.parallel.scaling import apply_world_size
    from dtnn.threads import default_threads, set_threads

    ctx = get_context()
    setup_logging(ctx.rank, ctx.size, getattr(args, "verbose", False))
    cfg = resolve_config(args)
    scaling = apply_world_size(cfg, ctx.size)
    if ctx.size > 1:
        get_logger().info(scaling)
    set_threads(cfg.train.threads or default_threads(ctx.local_size))
    from dtnn.prune.run import run_prune
    run_prune(cfg, ctx, args.checkpoint, resume=args.resume)
    return 0
