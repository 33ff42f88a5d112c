"""``dtnn tune``: pre-tune a model's convolutions (BestOf) and store the decisions.

Runs training steps (forward + backward, no weight updates) and then inference
forwards on random data of the model's input shape, with the batch sizes of the
config, until every convolution's choice has settled.  The decisions go to the tuning
cache (``$DTNN_TUNE_CACHE``, ``[tune] cache_dir`` or ``~/.cache/dtnn/tune``), which
later ``dtnn train`` / ``eval`` / ``predict`` runs with ``model.conv_algorithm =
"bestof"`` reuse, so they start at full speed.  Under mpiexec, the ranks of each node
tune together (timings reduced over the node).  The work is ``dtnn.tune.pretune``.
"""
from __future__ import annotations

import argparse


def add_arguments(p: argparse.ArgumentParser) -> None:
    from dtnn.cli.train import add_arguments as train_args
    train_args(p)
    p.add_argument("--shape", metavar="C,H,W",
                   help="input shape (default: from the config's dataset)")
    p.add_argument("--classes", type=int, default=10,
                   help="number of classes when --shape is given (default 10)")
    p.add_argument("--max-steps", type=int, default=200,
                   help="give up settling after this many steps per mode (default 200)")
    p.add_argument("--no-infer", action="store_true", help="tune training only")
    p.add_argument("--report", metavar="DIR", help="also write tuning.json/.txt there")


def run(args) -> int:
    import dtnn.tune as T
    from dtnn.cli.train import resolve_config
    from dtnn.parallel import get_context
    from dtnn.parallel.scaling import apply_world_size
    from dtnn.log import get_logger, setup_logging
    from dtnn.models import build_model
    from dtnn.threads import default_threads, set_threads
    from dtnn.tune.pretune import pretune
    from dtnn.tune.report import format_report, write_report

    ctx = get_context()
    setup_logging(ctx.rank, ctx.size, getattr(args, "verbose", False))
    log = get_logger()
    cfg = resolve_config(args)
    apply_world_size(cfg, ctx.size)
    set_threads(cfg.train.threads or default_threads(ctx.local_size))
    T.configure(cfg.tune.options(), comm=ctx)
    if args.shape:
        shape = tuple(int(v) for v in args.shape.split(","))
        classes = args.classes
    else:
        from dtnn.engine.session import load_data
        data = load_data(cfg)
        shape, classes = data.train.x.shape[1:], len(data.train.classes)
    opts = dict(cfg.model.options)
    opts["conv_algorithm"] = "bestof"
    model = build_model(cfg.model.name, shape, classes, seed=cfg.train.seed, **opts)
    done = pretune(model, cfg.train.batch_size,
                   None if args.no_infer else cfg.train.eval_batch_size, args.max_steps)
    for mode, (ok, steps) in done.items():
        n = cfg.train.batch_size if mode == "training" else cfg.train.eval_batch_size
        log.info(f"{mode} (batch {n}): {'settled' if ok else 'NOT settled'} after {steps} steps")
    rows = T.collect()
    if ctx.is_root:
        print(format_report(rows), end="")
        if args.report:
            write_report(args.report, rows)
    return 0
