"""``dtnn tune``: pre-tune a model's convolutions (BestOf) and store the decisions.

Runs training steps (forward + backward, no weight updates) and then inference
forwards on random data of the model's input shape, with the batch sizes of the
config, until every convolution's choice has settled.  The decisions go to the tuning
cache (``$DTNN_TUNE_CACHE``, ``[tune] cache_dir`` or ``~/.cache/dtnn/tune``), which
later ``dtnn train`` / ``eval`` / ``predict`` runs with ``model.conv_algorithm =
"bestof"`` reuse, so they start at full speed.  Under mpiexec, the ranks of each node
tune together (timings reduced over the node).
"""
from __future__ import annotations

import argparse

import numpy as np


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
    rng = np.random.default_rng(0)
    convs = [l for l in model.layers if getattr(l, "algorithm", None) is not None
             and hasattr(l.algorithm, "key")]

    def settled(n: int, training: bool) -> bool:
        # a collective-free local check: every rank runs the same steps, and decisions
        # are taken on node-reduced statistics, so all ranks settle at the same step
        return all(l.algorithm.tuner(training).settled(l.algorithm.key(l.geometry(n), training))
                   for l in convs)

    modes = [(True, cfg.train.batch_size)]
    if not args.no_infer:
        modes.append((False, cfg.train.eval_batch_size))
    for training, n in modes:
        x = rng.standard_normal((n,) + tuple(shape)).astype(np.float32)
        steps = 0
        while steps < args.max_steps and not (steps and settled(n, training)):
            out = model.forward(x, training=training)
            if training:
                model.backward(np.ones_like(out) / out.size)
            steps += 1
        log.info(f"{'training' if training else 'inference'} (batch {n}): "
                 f"{'settled' if settled(n, training) else 'NOT settled'} after {steps} steps")
    rows = T.collect()
    if ctx.is_root:
        print(format_report(rows), end="")
        if args.report:
            write_report(args.report, rows)
    return 0
