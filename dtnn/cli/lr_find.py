"""``dtnn lr-find``: the learning-rate range test for a config (also under mpiexec).

Writes ``lr_find.json`` and ``lr_find.png`` (loss vs lr) to ``--out``, prints the
suggestion, and with ``--write-config FILE`` saves the resolved config with
``optim.lr`` set to it (train with ``dtnn train -c FILE``).
"""
from __future__ import annotations

import argparse
import json
import os


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", metavar="FILE", help="TOML config file (see README)")
    p.add_argument("--set", "-s", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="override a config value (repeatable)")
    p.add_argument("--start-lr", type=float, default=1e-5, help="first lr (default 1e-5)")
    p.add_argument("--end-lr", type=float, default=10.0, help="last lr (default 10)")
    p.add_argument("--steps", type=int, default=200,
                   help="steps of the sweep; it stops earlier when the loss diverges "
                   "(default 200)")
    p.add_argument("--fraction", type=float, default=1.0,
                   help="suggest this fraction of the lr with the lowest loss (default 1: "
                   "that lr itself, for decaying schedules such as cosine; e.g. 0.3 for a "
                   "constant lr)")
    p.add_argument("--out", default="runs/lr_find", metavar="DIR",
                   help="directory for lr_find.json and lr_find.png (default runs/lr_find)")
    p.add_argument("--write-config", metavar="FILE",
                   help="write the resolved config with optim.lr = the suggestion")


def run(args) -> int:
    from dtnn.cli.train import resolve_config
    from dtnn.config import to_toml
    from dtnn.errors import ConfigError
    from dtnn.io import atomic
    from dtnn.log import get_logger, setup_logging
    from dtnn.parallel import get_context
    from dtnn.threads import default_threads, set_threads

    ctx = get_context()
    setup_logging(ctx.rank, ctx.size, getattr(args, "verbose", False))
    args.run_dir, args.resume, args.compress = None, None, None
    cfg = resolve_config(args)
    if args.write_config and os.path.isdir(args.write_config):
        raise ConfigError(f"--write-config {args.write_config}: is a directory")
    from dtnn.parallel.scaling import apply_world_size
    scaling = apply_world_size(cfg, ctx.size)   # train.global_batch_size, lr scaling
    if ctx.size > 1:
        get_logger().info(scaling)
    set_threads(cfg.train.threads or default_threads(ctx.local_size))
    from dtnn.engine.lr_find import lr_find
    result = lr_find(cfg, ctx, start_lr=args.start_lr, end_lr=args.end_lr, steps=args.steps,
                     suggest_fraction=args.fraction)
    if not ctx.is_root:
        return 0
    os.makedirs(args.out, exist_ok=True)
    atomic.write_text(os.path.join(args.out, "lr_find.json"),
                      json.dumps(result.to_dict(), indent=1) + "\n")
    result.plot(os.path.join(args.out, "lr_find.png"))
    log = get_logger()
    if result.suggested_lr is None:
        log.info("lr-find: too few steps for a suggestion; raise --end-lr or --steps")
        return 1
    print(f"suggested lr: {result.suggested_lr:.3g} (lowest loss at "
          f"{result.min_loss_lr:.3g}; config has {cfg.optim.lr:g}); plot: "
          f"{os.path.join(args.out, 'lr_find.png')}")
    if args.write_config:
        cfg.optim.lr = float(f"{result.suggested_lr:.3g}")
        if os.path.dirname(args.write_config):
            os.makedirs(os.path.dirname(args.write_config), exist_ok=True)
        atomic.write_text(args.write_config, to_toml(cfg))
        print(f"wrote {args.write_config} with optim.lr = {cfg.optim.lr:g}")
    return 0

