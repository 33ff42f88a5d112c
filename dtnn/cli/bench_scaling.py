"""``dtnn bench scaling``: dtnn vs PyTorch DDP on a simulated cluster (root only).

Throughput matrix (models x hosts x links x compressors, plus DDP)::

    dtnn bench scaling --out benchmarks/results/scaling

Time to accuracy on 4 hosts at 100 Mbit/s::

    dtnn bench scaling --tta -c configs/simplecnn.toml --set train.epochs=3 \\
        --target 0.89 --out benchmarks/results/scaling

Tables and plots again from the recorded JSON lines::

    dtnn bench scaling --report-only --out benchmarks/results/scaling
"""
from __future__ import annotations

import argparse
from pathlib import Path

from dtnn.bench.scaling import DEFAULT_COMPRESS, DEFAULT_DDP
from dtnn.errors import ConfigError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="benchmarks/results/scaling", metavar="DIR",
                   help="results directory (JSON lines, CSV, report.md, PNG plots)")
    p.add_argument("--models", nargs="+", default=["vgg11_bn:width=0.5", "simplecnn"],
                   metavar="NAME[:k=v,...]", help="zoo models with builder options")
    p.add_argument("--hosts", nargs="+", type=int, default=[1, 2, 4])
    p.add_argument("--ranks-per-host", type=int, default=1,
                   help="ranks on each simulated host (hierarchical exchange)")
    p.add_argument("--dist", nargs="*", default=[], metavar="KEY=VALUE",
                   help="reducer options for every dtnn row (see dtnn bench dist --dist)")
    p.add_argument("--modes", nargs="+", default=["none", "overlap", "blocking"],
                   choices=["none", "overlap", "blocking"], help="dtnn exchange modes")
    p.add_argument("--links", nargs="+", default=["shm", "100mbit", "1gbit"],
                   help="shm (plain mpiexec, shared memory) or a tc rate (100mbit, 1gbit)")
    p.add_argument("--compress", nargs="+", default=list(DEFAULT_COMPRESS), metavar="SPEC")
    p.add_argument("--ddp", nargs="*", default=list(DEFAULT_DDP),
                   help="DDP modes (nosync none fp16 powersgd); none given = skip DDP")
    p.add_argument("--frameworks", nargs="+", choices=["dtnn", "torch-ddp"],
                   default=["dtnn", "torch-ddp"], help="which side(s) to run")
    p.add_argument("--batch", type=int, default=32, help="samples per rank per step")
    p.add_argument("--steps", type=int, default=10, help="timed steps per row")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds per MPI job")
    p.add_argument("--fresh", action="store_true", help="redo cells already recorded")
    p.add_argument("--report-only", action="store_true",
                   help="only regenerate the tables and plots")
    t = p.add_argument_group("time to accuracy (--tta)")
    t.add_argument("--tta", action="store_true", help="measure time to accuracy instead")
    t.add_argument("-c", "--config", default="configs/simplecnn.toml")
    t.add_argument("--set", dest="overrides", action="append", default=[],
                   metavar="KEY=VALUE", help="config override for both frameworks")
    t.add_argument("--target", type=float, default=0.89, help="test accuracy to reach")
    t.add_argument("--evals-per-epoch", type=int, default=4)
    t.add_argument("--tta-hosts", type=int, default=4)
    t.add_argument("--tta-link", default="100mbit")


def run(args) -> int:
    from dtnn.bench.scaling_report import write_report
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    status = 0
    if not args.report_only:
        from dtnn.bench.dist import split_spec
        from dtnn.compress import check_spec
        for spec in args.compress:
            comp, _ = split_spec(spec)
            if comp != "none":
                check_spec(comp)
        bad = [m for m in args.ddp if m not in DEFAULT_DDP]
        if bad:
            raise ConfigError(f"--ddp: unknown mode(s) {', '.join(bad)} (known: "
                              f"{', '.join(DEFAULT_DDP)})")
        if args.tta:
            from dtnn.bench.tta import TtaPlan, run_tta
            if not Path(args.config).exists():
                raise ConfigError(f"--config: {args.config} does not exist")
            plan = TtaPlan(out=out, config=args.config, overrides=args.overrides,
                           hosts=args.tta_hosts, link=args.tta_link, target=args.target,
                           evals_per_epoch=args.evals_per_epoch, compress=args.compress,
                           ddp=[m for m in args.ddp if m != "nosync"],
                           timeout=args.timeout, fresh=args.fresh)
            status = run_tta(plan, log=_log)
        else:
            from dtnn.bench.scaling import Plan, run_throughput
            plan = Plan(out=out, models=args.models, hosts=args.hosts, links=args.links,
                        compress=args.compress, ddp=args.ddp, batch=args.batch,
                        steps=args.steps, warmup=args.warmup, timeout=args.timeout,
                        fresh=args.fresh, frameworks=args.frameworks,
                        ranks_per_host=args.ranks_per_host, dist=list(args.dist),
                        modes=list(args.modes))
            status = run_throughput(plan, log=_log)
    path = write_report(out)
    _log(f"report: {path}")
    return status


def _log(msg: str) -> None:
    print(msg, flush=True)
