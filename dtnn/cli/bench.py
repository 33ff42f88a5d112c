"""``dtnn bench``: benchmarks.

``dist``: data-parallel throughput and the split of a step into compute, compression
and (exposed) communication; run it under ``mpiexec -n N``::

    mpiexec -n 2 dtnn bench dist --model simplecnn --batch 64 --steps 20 --json out.json

``scaling``: dtnn vs PyTorch DDP on a simulated cluster (see ``dtnn.cli.bench_scaling``).
"""
from __future__ import annotations

import argparse
import json
import sys

from dtnn.errors import ConfigError


def add_arguments(parent: argparse.ArgumentParser) -> None:
    from dtnn.cli import bench_scaling
    sub = parent.add_subparsers(dest="what", metavar="BENCHMARK",
                                parser_class=type(parent))
    sub.required = True
    dist_arguments(sub.add_parser("dist", help="data-parallel throughput (under mpiexec)"))
    bench_scaling.add_arguments(sub.add_parser(
        "scaling", help="dtnn vs DDP on a simulated bandwidth-limited cluster (root; needs a "
        "source checkout: it runs launch/simcluster.py and benchmarks/ddp_peer.py)"))
    from dtnn.cli import bench_infer
    bench_infer.add_arguments(sub.add_parser(
        "infer", help="inference latency/memory: dtnn vs torch eager vs ONNX Runtime"))
    from dtnn.cli import bench_model
    bench_model.add_arguments(sub.add_parser(
        "model", help="cost model of the gradient exchange: calibrate, validate, predict"))


def dist_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="simplecnn", help="zoo model (default simplecnn)")
    p.add_argument("--input-shape", default="1,28,28", help="C,H,W (default 1,28,28)")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--width", type=float, help="model width multiplier (vgg*, cnet)")
    p.add_argument("--model-option", action="append", default=[], metavar="KEY=VALUE",
                   help="model builder option (JSON value), repeatable, e.g. filters=16")
    p.add_argument("--batch", type=int, default=64, help="samples per rank per step")
    p.add_argument("--steps", type=int, default=20, help="timed steps per mode")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--mode", action="append", choices=["overlap", "blocking", "none", "both"],
                   help="exchange mode(s), repeatable: overlap, blocking, none (exchange "
                        "skipped: the compute-only reference), both = overlap + blocking "
                        "(the default)")
    p.add_argument("--compress", action="append", metavar="SPEC",
                   help="compressor spec, repeatable (one row per spec and mode), e.g. "
                        "--compress none --compress topk:ratio=0.01 (default: none)")
    p.add_argument("--bucket-mb", type=float, default=4.0)
    p.add_argument("--dist", action="append", default=[], metavar="KEY=VALUE",
                   help="reducer option for every row (the [dist] section), repeatable, "
                        "e.g. --dist algorithm=ring --dist comm_thread=true; a --compress "
                        "spec may add its own after '|': none|algorithm=mpi")
    p.add_argument("--no-progress", action="store_true",
                   help="do not call MPI_Testsome from the backward hooks")
    p.add_argument("--threads", type=int, default=0,
                   help="BLAS/OpenMP threads per rank (0 = cores per host / ranks per host)")
    p.add_argument("--json", metavar="FILE", help="write the result as JSON ('-' = stdout)")


def run(args) -> int:
    if args.what == "model":
        from dtnn.cli import bench_model
        return bench_model.run(args)
    if args.what == "infer":
        from dtnn.cli import bench_infer
        return bench_infer.run(args)
    if args.what == "scaling":
        from dtnn.cli import bench_scaling
        return bench_scaling.run(args)
    from dtnn.bench import dist
    from dtnn.parallel import get_context
    from dtnn.threads import default_threads, set_threads

    ctx = get_context()
    threads = set_threads(args.threads or default_threads(ctx.local_size))
    # the convolution tuner as ``dtnn train`` sets it up (defaults, decisions agreed by
    # every rank): unconfigured, each rank decided alone and ranks on different hosts
    # ran different variants (#17)
    import dtnn.tune
    from dtnn.config import TuneConfig
    dtnn.tune.configure(TuneConfig().options(), comm=ctx)
    try:
        shape = tuple(int(v) for v in args.input_shape.split(","))
    except ValueError:
        raise ConfigError(f"--input-shape: expected C,H,W integers, got {args.input_shape!r}")
    options = {} if args.width is None else {"width": args.width}
    for item in args.model_option:
        key, eq, value = item.partition("=")
        if not eq:
            raise ConfigError(f"--model-option: expected KEY=VALUE, got {item!r}")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
    modes = []
    for m in args.mode or ["both"]:
        for one in (("overlap", "blocking") if m == "both" else (m,)):
            if one not in modes:
                modes.append(one)
    specs = args.compress or ["none"]
    from dtnn.compress import check_spec
    from dtnn.parallel.options import DistOptions
    dist_opts = {}
    for item in args.dist:
        key, eq, value = item.partition("=")
        if not eq:
            raise ConfigError(f"--dist: expected KEY=VALUE, got {item!r}")
        dist_opts[key.strip()] = value.strip()
    for spec in specs:
        comp, extra = dist.split_spec(spec)
        if comp != "none":
            check_spec(comp)
        DistOptions.resolve({**dist_opts, **extra})
    result = dist.run(ctx, args.model, shape, args.classes, options, batch=args.batch,
                      steps=args.steps, warmup=args.warmup, modes=modes,
                      bucket_mb=args.bucket_mb, progress=not args.no_progress,
                      compress=specs, dist=dist_opts)
    result["threads_per_rank"] = threads
    if not ctx.is_root:
        return 0
    if args.json:
        text = json.dumps(result, indent=2)
        if args.json == "-":
            sys.stdout.write(text + "\n")
        else:
            with open(args.json, "w") as fh:
                fh.write(text + "\n")
    if args.json != "-":
        sys.stdout.write(format_result(result) + "\n")
    return 0


def format_result(r) -> str:
    ms = lambda v: "-" if v is None else f"{1e3 * v:8.2f}"  # noqa: E731
    lines = [f"{r['model']} {r['model_options'] or ''} ({r['params']:,} params, "
             f"{r['grad_bytes'] / 2**20:.2f} MiB of gradients), {r['ranks']} rank(s), "
             f"{r['threads_per_rank']} thread(s)/rank",
             f"{'mode':<9} {'compress':<22} {'samples/s':>10} {'step ms':>8} {'compute':>8} "
             f"{'codec':>8} {'comm':>8} {'exposed':>8} {'raw AR':>8} {'KiB sent':>9}"]
    for row in r["results"]:
        lines.append(f"{row['mode']:<9} {row.get('compress', 'none'):<22} "
                     f"{row['samples_per_second']:10.0f} "
                     f"{ms(row['step_seconds'])} {ms(row.get('compute_seconds'))} "
                     f"{ms(row.get('codec_seconds'))} "
                     f"{ms(row.get('comm_seconds'))} {ms(row.get('exposed_comm_seconds'))} "
                     f"{ms(row.get('raw_allreduce_seconds'))} "
                     f"{(row.get('sent_bytes') or 0) / 2**10:9.1f}")
    return "\n".join(lines)
