"""``dtnn train``: train a model from a TOML config plus --set overrides."""
from __future__ import annotations

import argparse



def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", "-c", metavar="FILE", help="TOML config file (see README)")
    p.add_argument("--set", "-s", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="override a config value, e.g. train.epochs=5 "
                   "or model.options.width=0.5 (repeatable)")
    p.add_argument("--resume", metavar="CHECKPOINT",
                   help="continue from a checkpoint.h5 (uses its saved config unless --config "
                   "is given; --set still applies, e.g. train.epochs=20 to train longer)")
    p.add_argument("--overwrite", action="store_true",
                   help="start a new run in a non-empty run directory (its dtnn files are "
                   "deleted once everything is validated); without it a non-empty run "
                   "directory is refused unless --resume")
    p.add_argument("--run-dir", metavar="DIR", help="shortcut for --set output.run_dir=DIR")
    p.add_argument("--compress", metavar="SPEC",
                   help='gradient compression, shortcut for --set dist.compress="SPEC", e.g. '
                   'topk:ratio=0.01, qsgd:bits=8, powersgd:rank=2,start_step=100, fp16, none')


def resolve_config(args):
    from dtnn.cli._checks import checkpoint_file
    from dtnn.config import apply_dict, load_config, parse_override, reject_overrides
    if args.resume:
        checkpoint_file(args.resume)   # before h5py loads
    reject_overrides(args.overrides, ignored=("prune",),
                     command=f"dtnn {getattr(args, 'command', None) or 'train'}")
    overrides = list(args.overrides)
    if args.run_dir:
        overrides.append(f"output.run_dir={_quote(args.run_dir)}")
    if getattr(args, "compress", None):
        overrides.append(f"dist.compress={_quote(args.compress)}")
    if args.resume and not args.config:
        from dtnn.engine.session import config_from_checkpoint
        cfg = config_from_checkpoint(args.resume)
        for item in overrides:
            apply_dict(cfg, parse_override(item), f"--set {item}")
        from dtnn.config import validate
        validate(cfg)
        return cfg
    return load_config(args.config, overrides)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def run(args) -> int:
    from dtnn.log import get_logger, setup_logging
    from dtnn.parallel import get_context
    from dtnn.parallel.scaling import apply_world_size
    from dtnn.threads import default_threads, set_threads
    cfg = resolve_config(args)  # config errors before MPI starts or numpy loads
    ctx = get_context()
    setup_logging(ctx.rank, ctx.size, getattr(args, "verbose", False))
    scaling = apply_world_size(cfg, ctx.size)
    if ctx.size > 1:
        get_logger().info(scaling)
    set_threads(cfg.train.threads or default_threads(ctx.local_size))
    from dtnn.engine.session import train
    train(cfg, ctx, resume=args.resume, overwrite=args.overwrite)
    return 0
