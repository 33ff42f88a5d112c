"""``dtnn.torch`` next to PyTorch DDP: the same torch training loop and model, two exchanges.

Built on ``ddp_peer.py`` (the DDP peer of ``dtnn train``): the model is the torch twin
of a dtnn zoo model, data order, optimizer, schedule and evaluation points are the
same; only the wrapper differs (``dtnn.torch.DataParallel(net, compress=SPEC)`` instead
of ``DistributedDataParallel`` + hook).

Training (time to accuracy; one JSON line per evaluation/epoch to ``--out``)::

    launch/simcluster.sh run -- -n 4 .venv/bin/python benchmarks/torch_bridge_peer.py \\
        -c configs/simplecnn.toml --compress topk:ratio=0.01 --target-accuracy 0.89 \\
        --evals-per-epoch 4 --out runs/tb/metrics.jsonl

``--bench``: synthetic throughput, DDP rows (``--modes``, as ``ddp_peer.py --bench``)
and dtnn.torch rows (``--dtnn SPEC``, repeatable; ``nosync`` = the wrapper with the
exchange skipped) in ONE job on the same ranks and weights, plus the time of the bare
collectives on the gradient's size (MPI ``Allreduce`` and gloo ``all_reduce``, median of
``--bench-steps`` calls): what the overhead target compares against.  Rows are
timed in ``--rounds`` interleaved rounds (median over all timed steps, slowest rank).  Rank 0 prints one
JSON object and writes it to ``--json``.
"""
from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ddp_peer  # noqa: E402  (next to this file)

import dtnn.torch as hvd  # noqa: E402


def parse_args(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(add_help=False)
    ap.add_argument("--compress", default=None, help="training: dtnn.torch with this spec")
    ap.add_argument("--dtnn", dest="dtnn_specs", action="append", default=[],
                    metavar="SPEC[@key=value...]",
                    help="--bench: a dtnn.torch row (nosync, none, fp16, ...; @mode=blocking, "
                         "@bucket_mb=1: exchange options)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="--bench: rounds of --bench-steps timed steps per row, interleaved")
    ap.add_argument("--max-tuning-steps", type=int, default=60,
                    help="--bench: untimed steps at most while dtnn's exchange tunes "
                         "itself online (dist.tune; across hosts by default)")
    ap.add_argument("--dtnn-bucket-mb", type=float, default=None,
                    help="dtnn.torch bucket size (default: dtnn's dist.bucket_mb)")
    mine, rest = ap.parse_known_args(argv)
    modes_given = any(a == "--modes" or a.startswith("--modes=") for a in rest)
    args = ddp_peer.parse_args(rest)
    for k, v in vars(mine).items():
        setattr(args, k, v)
    args.ddp_modes = args.modes if modes_given else []   # DDP rows only when asked for
    if not args.bench and not args.compress:
        ap.error("training needs --compress SPEC (ddp_peer.py runs DDP)")
    return args


class BridgeTraining(ddp_peer.PeerTraining):
    """ddp_peer's training run with dtnn.torch.DataParallel as the exchange."""
    framework = "dtnn-torch"

    def wrap(self, net, args):
        dp = hvd.DataParallel(net, compress=args.compress, bucket_mb=args.dtnn_bucket_mb)
        self.bridge = dp
        return dp, {"compress": args.compress}

    def all_reduce_sum(self, tensor):
        hvd.allreduce_(tensor, op=hvd.Sum)

    def barrier(self):
        hvd.barrier()

    def emit(self, record):
        if record.get("event") == "epoch":
            s = self.bridge.exchange_stats()
            self.exchange.update(sent_bytes=s.get("sent_bytes"),
                                 payload_bytes=s.get("payload_bytes"))
        super().emit(record)


# ------------------------------------------------------------------- --bench
class Row:
    """One bench row: a fresh wrapper around a copy of the base weights, its own SGD."""

    def __init__(self, framework, mode, base, args):
        import contextlib
        from torch.nn.parallel import DistributedDataParallel as DDP
        self.framework, self.mode, self.times = framework, mode, []
        self.net = copy.deepcopy(base)   # every row starts from the same weights
        self.warmup, self.hook, self.dp = args.bench_warmup, None, None
        skip = contextlib.nullcontext
        if framework == "torch-ddp":
            self.module = DDP(self.net, bucket_cap_mb=args.bucket_mb)
            self.hook = ddp_peer.register_hook(self.module, "none" if mode == "nosync"
                                               else mode, args)["hook"]
            if mode == "powersgd":   # its uncompressed start and first step: untimed
                self.warmup = max(self.warmup, ddp_peer.powersgd_start(args) + 1)
            if mode == "nosync":
                skip = self.module.no_sync
        else:
            spec, options = row_options(mode, args)
            #: diagnostic: no exchange, but every rank waits for the others each step
            self.barrier = options.pop("barrier", None) is not None
            self.dp = self.module = hvd.DataParallel(
                self.net, compress="none" if spec == "nosync" else spec, **options)
            if spec == "nosync":
                skip = self.module.no_sync
        self.skip = skip
        self.comm = hvd.comm()
        self.opt = torch.optim.SGD(self.net.parameters(), lr=0.01, momentum=0.9)  # as ddp_peer
        self.lossf = torch.nn.CrossEntropyLoss()

    def step(self, x, y):
        self.opt.zero_grad(set_to_none=False)
        with self.skip():
            self.lossf(self.module(x), y).backward()
        if getattr(self, "barrier", False) and self.comm is not None:
            self.comm.Barrier()
        self.opt.step()


def time_rows(rows, x, y, args, comm):
    """Warm every row up, then ``--rounds`` rounds of ``--bench-steps`` timed steps per
    row, rows interleaved (a drifting machine load then hits every row alike)."""
    for row in rows:
        for _ in range(row.warmup):
            row.step(x, y)
        reducer = row.dp._bridge.reducer if row.dp is not None else None
        # across hosts the exchange tunes its algorithm and bucket size online
        # (dist.tune=auto): time its steady state, not the trials (steps counted)
        row.tuning_steps = 0
        while (reducer is not None and reducer.tuner is not None  # no_sync: never tunes
               and not row.mode.startswith("nosync")
               and not reducer.tuner.settled and row.tuning_steps < args.max_tuning_steps):
            row.step(x, y)
            row.tuning_steps += 1
        if reducer is not None:
            reducer.reset_stats()
    for _ in range(args.rounds):
        for row in rows:
            row.step(x, y)           # one untimed step after switching rows
            comm.Barrier()
            for _ in range(args.bench_steps):
                t = time.perf_counter()
                row.step(x, y)
                row.times.append(time.perf_counter() - t)


def row_options(row, args):
    """'none@mode=blocking@bucket_mb=1' -> ('none', {'mode': 'blocking', 'bucket_mb': 1.0});
    'nosync@barrier': the no_sync row plus a barrier per step (what synchronising the
    ranks alone costs)."""
    spec, *extra = row.split("@")
    options = {"bucket_mb": args.dtnn_bucket_mb}
    for item in extra:
        key, _, value = item.partition("=")
        options[key] = float(value) if key == "bucket_mb" else value
    return spec, options


def collective_seconds(comm, nbytes, steps, gloo):
    """Median seconds of a blocking MPI Allreduce (and gloo all_reduce) of ``nbytes``."""
    from mpi4py import MPI
    buf = np.ones(nbytes // 4, np.float32)
    out = {}
    t_mpi = []
    for _ in range(steps + 2):
        comm.Barrier()
        t = time.perf_counter()
        comm.Allreduce(MPI.IN_PLACE, buf, op=MPI.SUM)
        t_mpi.append(time.perf_counter() - t)
    out["mpi_allreduce_seconds"] = float(comm.allreduce(np.median(t_mpi[2:]), op=MPI.MAX))
    if gloo:
        import torch.distributed as dist
        tb = torch.ones(nbytes // 4)
        t_gloo = []
        for _ in range(steps + 2):
            comm.Barrier()
            t = time.perf_counter()
            dist.all_reduce(tb)
            t_gloo.append(time.perf_counter() - t)
        out["gloo_allreduce_seconds"] = float(comm.allreduce(np.median(t_gloo[2:]),
                                                             op=MPI.MAX))
    return out


def run_bench(args, cfg, comm, names, log):
    from mpi4py import MPI
    from dtnn.models import build_model
    from dtnn.parallel.scaling import apply_world_size

    size = comm.size
    shape = tuple(int(v) for v in args.input_shape.split(","))
    if not args.batch:
        apply_world_size(cfg, size)
    batch = args.batch or cfg.train.batch_size
    options = dict(cfg.model.options)
    model = build_model(cfg.model.name, shape, args.classes, seed=cfg.train.seed, **options)
    base = ddp_peer.torch_twin(model)
    params = sum(p.numel() for p in base.parameters())
    grad_bytes = sum(p.numel() * p.element_size() for p in base.parameters() if p.requires_grad)
    rng = np.random.default_rng(comm.rank)
    x = torch.from_numpy(rng.standard_normal((batch,) + shape).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, args.classes, batch).astype(np.int64))
    log(f"{cfg.model.name} {options} ({params} parameters), batch {batch} per rank x {size}")
    common = {"ranks": size, "batch_per_rank": batch, "global_batch": batch * size,
              "steps": args.bench_steps, "params": params, "grad_bytes": grad_bytes}
    todo = ([Row("torch-ddp", m, base, args) for m in args.ddp_modes]
            + [Row("dtnn-torch", m, base, args) for m in args.dtnn_specs])
    time_rows(todo, x, y, args, comm)
    rows = []
    for row in todo:
        step = float(comm.allreduce(float(np.median(row.times)), op=MPI.MAX))
        rec = dict(common, framework=row.framework, mode=row.mode, warmup=row.warmup,
                   rounds=args.rounds, step_seconds=step,
                   samples_per_second=batch * size / step)
        if row.framework == "torch-ddp":
            rec.update(hook=row.hook, bucket_mb=args.bucket_mb)
        else:
            stats = row.dp.exchange_stats()
            rec["compress"] = row.mode
            rec["exchange"] = {k: stats.get(k) for k in (
                "mode", "algorithm", "buckets", "bucket_mb", "exposed_comm_seconds",
                "hook_mpi_seconds", "comm_seconds", "codec_seconds", "sent_bytes",
                "payload_bytes", "compression_ratio", "wire_sent_bytes")}
            rec["exchange"]["tuning_steps"] = row.tuning_steps
            row.dp.close()
        rows.append(rec)
        log(f"{row.framework} {row.mode}: {step * 1e3:.2f} ms/step")
    del todo
    gc.collect()
    bare = collective_seconds(comm, grad_bytes, args.bench_steps, bool(args.ddp_modes)) \
        if size > 1 else {}
    for fw in ("torch-ddp", "dtnn-torch"):
        ref = next((r["step_seconds"] for r in rows
                    if r["framework"] == fw and r["mode"] == "nosync"), None)
        for r in (r for r in rows if r["framework"] == fw):
            r["compute_seconds"] = ref
            r["communication_efficiency"] = None if ref is None else ref / r["step_seconds"]
    result = {"framework": "dtnn-torch+torch-ddp", "model": cfg.model.name,
              "model_options": options, "input_shape": list(shape), "params": params,
              "grad_bytes": grad_bytes, "ranks": size, "hosts": len(set(names)),
              "threads_per_rank": args.threads, "results": rows, **bare}
    if comm.rank == 0:
        text = json.dumps(result)
        if args.json:
            with open(args.json, "w") as fh:
                fh.write(text + "\n")
        print(text, flush=True)


def main(argv=None):
    args = parse_args(argv)
    from mpi4py import MPI
    from dtnn.config import load_config
    from dtnn.parallel.scaling import apply_world_size

    comm = MPI.COMM_WORLD
    hvd.init(threads=args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    log = (lambda msg: print(f"torch_bridge_peer: {msg}", file=sys.stderr, flush=True)) \
        if comm.rank == 0 else (lambda msg: None)
    cfg = load_config(args.config, args.overrides)
    names = comm.allgather(MPI.Get_processor_name())
    if args.bench:
        if args.ddp_modes:
            ddp_peer.init_gloo(comm, args, log)
        run_bench(args, cfg, comm, names, log)
        if args.ddp_modes:
            import torch.distributed as dist
            gc.collect()
            dist.barrier()
            dist.destroy_process_group()
        return 0
    if cfg.optim.name != "sgd":
        raise SystemExit(f"torch_bridge_peer: only optim.name = 'sgd' is mirrored, "
                         f"not {cfg.optim.name!r}")
    apply_world_size(cfg, comm.size)
    args.mode = args.compress
    BridgeTraining(args, cfg, comm.rank, comm.size, log).run(log)
    hvd.barrier()
    return 0


if __name__ == "__main__":
    sys.exit(main())
