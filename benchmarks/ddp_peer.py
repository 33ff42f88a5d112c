"""PyTorch DDP peer of a dtnn training run: same model, data order, optimizer and schedule.

One process per MPI rank (rank/size from mpi4py), torch.distributed with the gloo backend
over TCP, so it runs under the same launchers as ``dtnn train``:

    mpiexec -n 2 python benchmarks/ddp_peer.py -c configs/simplecnn.toml --mode fp16
    launch/simcluster.sh run -- -n 4 python benchmarks/ddp_peer.py -c configs/simplecnn.toml \\
        --mode powersgd --target-accuracy 0.90 --evals-per-epoch 4 --stop-at-target \\
        --out runs/ddp/metrics.jsonl
    mpiexec -n 4 python benchmarks/ddp_peer.py -c configs/simplecnn.toml --bench --json b.json

Shared with dtnn, so the two sides differ only in the framework: the model (built by dtnn
from ``[model]``, same seed, mirrored by ``torch_twin`` with the same weights); the data
(``load_dataset`` + ``normalize`` and dtnn's ``BatchLoader``: same sample order, per-rank
slices and shift augmentation); SGD with momentum/nesterov, weight decay on the parameters
dtnn decays, dtnn's learning-rate schedule, the per-rank batch, label smoothing; the
evaluation, sharded over ranks and summed, after steps ``steps * j // K`` (j = 1..K) of
every epoch, K = ``--evals-per-epoch`` (dtnn's ``train.evals_per_epoch``).

Modes: ``none`` (allreduce of fp32 buckets), ``fp16`` (``fp16_compress_hook``),
``powersgd`` (rank ``--powersgd-rank``, error feedback, warm start; the first
``--powersgd-start-iter`` steps go uncompressed as torch requires).  BatchNorm buffers:
DDP broadcasts rank 0's every step (dtnn averages them).

Timing: ``wall_seconds`` counts from the start of training (after a barrier), evaluation
included; ``train_seconds`` is wall minus the time spent evaluating, so evaluating more
often does not make training look slower.  ``time_to_accuracy`` (``_wall``) is
``train_seconds`` (``wall_seconds``) at the first evaluation with accuracy >=
``--target-accuracy``, null before; ``--stop-at-target`` ends training there.

Rank 0 prints, and appends to ``--out``, one JSON line per evaluation (``event: "eval"``:
epoch, epoch_progress, step, eval_loss, eval_accuracy, timing) and one per epoch
(``event: "epoch"``, after its last evaluation, also for an epoch cut short by a stop):
dtnn's ``metrics.jsonl`` fields (``epoch_seconds`` = training only) plus ``step_seconds``,
timing, ``framework``, ``mode`` and ``exchange``.

``--bench``: synthetic throughput, the peer of ``dtnn bench dist``.  No dataset: the
config's ``[model]`` on ``--input-shape``/``--classes``, each rank its own fixed random
batch of ``--batch``.  Per mode of ``--modes`` a fresh DDP on the same initial weights runs
warm-up + ``--bench-steps`` timed SGD steps (``nosync``: under ``ddp.no_sync()``, i.e.
compute only).  ``step_seconds`` is the slowest rank's median step; ``exposed_comm_seconds``
its excess over the ``nosync`` row.  Rank 0 prints one JSON object (logs go to stderr)
and writes it to ``--json``.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import datetime
import fcntl
import gc
import json
import os
import socket
import struct
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel as DDP

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(1, ROOT)

from torch_twin import torch_twin  # noqa: E402  (next to this file)

MODES = ("none", "fp16", "powersgd")
BENCH_MODES = ("nosync",) + MODES


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-c", "--config", default=os.path.join(ROOT, "configs", "simplecnn.toml"))
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="dtnn config override, e.g. train.epochs=2 (repeatable)")
    ap.add_argument("--mode", choices=MODES, default="none")
    ap.add_argument("--powersgd-rank", type=int, default=2)
    ap.add_argument("--powersgd-start-iter", type=int, default=10,
                    help="uncompressed steps before PowerSGD starts (torch needs >= 2)")
    ap.add_argument("--bucket-mb", type=float, default=25.0, help="DDP bucket_cap_mb")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per rank")
    ap.add_argument("--target-accuracy", type=float, default=0.90)
    ap.add_argument("--evals-per-epoch", type=int, default=1,
                    help="evaluate after steps steps*j//K, j=1..K, of every epoch")
    ap.add_argument("--stop-at-target", action="store_true",
                    help="stop at the first evaluation reaching --target-accuracy")
    ap.add_argument("--max-steps", type=int, default=0,
                    help="stop each epoch after this many steps (smoke tests; overrides "
                         "train.max_steps_per_epoch)")
    ap.add_argument("--out", help="append the JSON lines here (rank 0)")
    ap.add_argument("--iface", help="network interface for gloo and the rendezvous "
                    "(default: $FI_TCP_IFACE, set by launch/simcluster.sh, else loopback "
                    "when all ranks share a host)")
    b = ap.add_argument_group("--bench: synthetic throughput (no dataset)")
    b.add_argument("--bench", action="store_true")
    b.add_argument("--input-shape", default="1,28,28", help="C,H,W")
    b.add_argument("--classes", type=int, default=10)
    b.add_argument("--batch", type=int, default=0,
                   help="per-rank batch (default: the config's for this world size)")
    b.add_argument("--bench-steps", type=int, default=20)
    b.add_argument("--bench-warmup", type=int, default=3)
    b.add_argument("--modes", default="nosync,none,fp16,powersgd",
                   help=f"comma list from {','.join(BENCH_MODES)}")
    b.add_argument("--json", help="also write the bench JSON here (rank 0)")
    args = ap.parse_args(argv)
    if args.evals_per_epoch < 1:
        ap.error("--evals-per-epoch must be >= 1")
    args.modes = [m for m in args.modes.split(",") if m]
    if not args.modes or set(args.modes) - set(BENCH_MODES):
        ap.error(f"--modes: choose from {','.join(BENCH_MODES)}")
    return args


# ------------------------------------------------------------------- rendezvous
def iface_ipv4(name: str) -> str:
    """IPv4 address of interface ``name`` (SIOCGIFADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name[:15].encode()))
    return socket.inet_ntoa(packed[20:24])


def rendezvous(comm, iface_arg):
    """(master address, port, interface for gloo) agreed over MPI."""
    import mpi4py.MPI as MPI
    names = comm.allgather(MPI.Get_processor_name())
    iface = iface_arg or os.environ.get("GLOO_SOCKET_IFNAME") or os.environ.get("FI_TCP_IFACE")
    if not iface and len(set(names)) == 1:
        iface = "lo"
    info = None
    if comm.rank == 0:
        if os.environ.get("MASTER_ADDR"):
            addr = os.environ["MASTER_ADDR"]
        elif iface:
            addr = iface_ipv4(iface)
        else:
            addr = socket.gethostbyname(socket.gethostname())
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((addr, 0))
            port = s.getsockname()[1]
        port = int(os.environ.get("MASTER_PORT", port))
        info = (addr, port)
    addr, port = comm.bcast(info, root=0)
    return addr, port, iface, names


def init_gloo(comm, args, log):
    """Join the gloo process group; returns the processor names of all ranks."""
    addr, port, iface, names = rendezvous(comm, args.iface)
    if iface:
        os.environ["GLOO_SOCKET_IFNAME"] = iface
    dist.init_process_group("gloo", init_method=f"tcp://{addr}:{port}", rank=comm.rank,
                            world_size=comm.size, timeout=datetime.timedelta(minutes=5))
    what = f"bench {','.join(args.modes)}" if args.bench else f"mode {args.mode}"
    log(f"{comm.size} ranks on {len(set(names))} host(s) {sorted(set(names))}, gloo via "
        f"{iface or 'default interface'}, master {addr}:{port}, {what}")
    return names


# ------------------------------------------------------------------- model, optimizer
def decay_groups(model, net, weight_decay):
    """Two param groups: the parameters dtnn applies weight decay to, and the rest."""
    decay, plain = [], []
    for layer, module in zip(model.layers, net):
        for pname, p in module.named_parameters(recurse=False):
            if layer.registry_name in ("conv2d", "dense") and pname in layer.decay_params:
                decay.append(p)
            else:
                plain.append(p)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": plain, "weight_decay": 0.0}]


def powersgd_start(args):
    return max(2, args.powersgd_start_iter)  # torch rejects start_powerSGD_iter < 2


def register_hook(ddp, mode, args):
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks, powerSGD_hook
    if mode == "fp16":
        ddp.register_comm_hook(None, default_hooks.fp16_compress_hook)
        return {"hook": "fp16_compress_hook"}
    if mode == "powersgd":
        state = powerSGD_hook.PowerSGDState(
            process_group=None, matrix_approximation_rank=args.powersgd_rank,
            start_powerSGD_iter=powersgd_start(args), use_error_feedback=True, warm_start=True)
        ddp.register_comm_hook(state, powerSGD_hook.powerSGD_hook)
        return {"hook": "powerSGD_hook", "rank": args.powersgd_rank,
                "start_iter": powersgd_start(args)}
    return {"hook": None}


# ------------------------------------------------------------------- training
class PeerTraining:
    """One DDP training run mirroring ``dtnn train`` (see the module docstring)."""

    def __init__(self, args, cfg, rank, size, log):
        from dtnn.data import Augment, BatchLoader, load_dataset, normalize
        from dtnn.engine.session import make_schedule
        from dtnn.engine.trainer import eval_points   # the same steps as dtnn train
        from dtnn.models import build_model

        self.args, self.rank, self.size = args, rank, size
        d, seed = cfg.data, cfg.train.seed
        train, self.test = load_dataset(d.source, d.path or None, **d.options)
        if self.test is None:
            raise SystemExit("ddp_peer: the dataset has no test split to evaluate on")
        if d.normalize:
            normalize(train, self.test)
        augment = None
        if d.augment_shift or d.augment_flip:
            augment = Augment(shift=d.augment_shift, flip=d.augment_flip, seed=seed)
        self.loader = BatchLoader(train, cfg.train.batch_size, shuffle=True, seed=seed,
                                  drop_last=True, rank=rank, world_size=size, augment=augment)
        model = build_model(cfg.model.name, train.x.shape[1:], len(train.classes), seed=seed,
                            **dict(cfg.model.options))
        self.net = torch_twin(model)
        nparams = sum(p.numel() for p in self.net.parameters())
        self.ddp, exchange = self.wrap(self.net, args)
        self.exchange = dict(exchange, bucket_mb=args.bucket_mb, params=nparams)
        self.opt = torch.optim.SGD(decay_groups(model, self.net, cfg.optim.weight_decay),
                                   lr=cfg.optim.lr, momentum=cfg.optim.momentum,
                                   nesterov=cfg.optim.nesterov)
        self.schedule = make_schedule(cfg, self.loader.steps_per_epoch)
        self.lossf = torch.nn.CrossEntropyLoss(label_smoothing=cfg.train.label_smoothing)
        max_steps = args.max_steps or cfg.train.max_steps_per_epoch
        self.steps = min(self.loader.steps_per_epoch, max_steps or self.loader.steps_per_epoch)
        self.points = set(eval_points(self.steps, args.evals_per_epoch))
        self.epochs, self.eval_batch = cfg.train.epochs, cfg.train.eval_batch_size
        self.eval_idx = np.arange(rank, len(self.test.y), size)
        self.step = 0
        self.reached = None   # (train_seconds, wall_seconds) at the first target hit
        self.t_start, self.eval_seconds = time.perf_counter(), 0.0
        log(f"{cfg.model.name} ({nparams} parameters), batch {cfg.train.batch_size} per rank "
            f"x {size}, {self.steps} steps/epoch, {self.epochs} epochs, "
            f"{self.schedule.describe()}, evaluating after steps {sorted(self.points)}")

    # --- the framework: DDP here; benchmarks/torch_bridge_peer.py swaps in dtnn.torch
    framework = "torch-ddp"

    def wrap(self, net, args):
        """(wrapped module, description of the exchange)."""
        ddp = DDP(net, bucket_cap_mb=args.bucket_mb)
        return ddp, register_hook(ddp, args.mode, args)

    def all_reduce_sum(self, tensor):
        dist.all_reduce(tensor)

    def barrier(self):
        dist.barrier()

    def train_step(self, xb, yb):
        """One optimizer step; returns (loss, correct) on this rank's batch."""
        lr = self.schedule.lr_at(self.step)
        for g in self.opt.param_groups:
            g["lr"] = lr
        x, y = torch.from_numpy(xb), torch.from_numpy(yb)
        self.opt.zero_grad(set_to_none=False)
        out = self.ddp(x)
        loss = self.lossf(out, y)
        loss.backward()
        self.opt.step()
        self.step += 1
        lv = float(loss.detach())
        if not np.isfinite(lv):
            raise SystemExit(f"ddp_peer: loss became {lv} at step {self.step}")
        return lv, int((out.argmax(1) == y).sum())

    def evaluate(self):
        """(loss, accuracy) on the test split, sharded like dtnn's and summed."""
        self.ddp.eval()
        e_loss = e_correct = 0.0
        with torch.no_grad():
            for s0 in range(0, len(self.eval_idx), self.eval_batch):
                sel = self.eval_idx[s0:s0 + self.eval_batch]
                xb, yb = torch.from_numpy(self.test.x[sel]), torch.from_numpy(self.test.y[sel])
                logits = self.net(xb)   # the bare module: no DDP forward bookkeeping
                e_loss += float(torch.nn.functional.cross_entropy(logits, yb, reduction="sum"))
                e_correct += int((logits.argmax(1) == yb).sum())
        tot = torch.tensor([e_loss, e_correct], dtype=torch.float64)
        self.all_reduce_sum(tot)
        self.ddp.train()
        return float(tot[0]) / len(self.test.y), float(tot[1]) / len(self.test.y)

    def timing(self, wall=None):
        wall = time.perf_counter() - self.t_start if wall is None else wall
        tta = self.reached or (None, None)
        return {"wall_seconds": wall, "train_seconds": wall - self.eval_seconds,
                "target_accuracy": self.args.target_accuracy,
                "time_to_accuracy": tta[0], "time_to_accuracy_wall": tta[1]}

    def eval_point(self, epoch, done):
        """Evaluate after ``done`` steps of ``epoch`` (0-based); writes the eval record."""
        t0 = time.perf_counter()
        loss, acc = self.evaluate()
        now = time.perf_counter()
        self.eval_seconds += now - t0
        wall = now - self.t_start
        # acc is allreduced: every rank takes the same decision (and so stops together)
        if self.reached is None and acc >= self.args.target_accuracy:
            self.reached = (wall - self.eval_seconds, wall)
        self.emit({"event": "eval", "epoch": epoch + 1,
                   "epoch_progress": epoch + done / self.steps, "step": self.step,
                   "eval_loss": loss, "eval_accuracy": acc, **self.timing(wall)})
        return loss, acc

    def emit(self, record):
        if self.rank == 0:
            line = json.dumps(dict(record, framework=self.framework, mode=self.args.mode,
                                   exchange=self.exchange))
            print(line, flush=True)
            if self.args.out:
                with open(self.args.out, "a") as fh:
                    fh.write(line + "\n")

    def run_epoch(self, epoch):
        """Train one epoch, or up to a stop at the target; True if training stops."""
        loss_sum = correct = seen = done = 0
        last_eval, stop = (None, None), False
        evaluated_before = self.eval_seconds
        t0 = time.perf_counter()
        for i, (xb, yb) in enumerate(self.loader.epoch(epoch)):
            if i >= self.steps:
                break
            lv, c = self.train_step(xb, yb)
            loss_sum += lv * len(yb)
            correct += c
            seen += len(yb)
            done = i + 1
            if done in self.points:
                last_eval = self.eval_point(epoch, done)
                stop = self.args.stop_at_target and self.reached is not None
                if stop:
                    break
        # training only: eval_point counts its time in self.eval_seconds
        seconds = time.perf_counter() - t0 - (self.eval_seconds - evaluated_before)
        # accounting over the steps actually done (fewer if the epoch was cut short)
        tot = torch.tensor([loss_sum, correct, seen, seconds], dtype=torch.float64)
        self.all_reduce_sum(tot)
        loss_sum, correct, seen = float(tot[0]), float(tot[1]), float(tot[2])
        epoch_seconds = float(tot[3]) / self.size
        self.emit({"event": "epoch", "epoch": epoch + 1, "step": self.step,
                   "lr": self.opt.param_groups[0]["lr"],
                   "train_loss": loss_sum / max(1.0, seen),
                   "train_accuracy": correct / max(1.0, seen),
                   "epoch_seconds": epoch_seconds,
                   "samples_per_second": seen / max(epoch_seconds, 1e-9),
                   "processes": self.size, "eval_loss": last_eval[0],
                   "eval_accuracy": last_eval[1],
                   "step_seconds": epoch_seconds / max(1, done), **self.timing()})
        return stop

    def run(self, log):
        self.ddp.train()
        self.barrier()   # the clock starts when every rank is ready
        self.t_start, self.eval_seconds = time.perf_counter(), 0.0
        for epoch in range(self.epochs):
            if self.run_epoch(epoch):
                log(f"eval accuracy reached {self.args.target_accuracy:g} after "
                    f"{self.reached[0]:.2f} s of training (step {self.step}): stopping")
                break


# ------------------------------------------------------------------- --bench
def bench_mode(mode, base, x, y, args, comm):
    """(median seconds per timed step, warm-up steps, hook) of a fresh DDP around a copy
    of ``base``: forward, backward with the DDP exchange, optimizer step."""
    net = copy.deepcopy(base)   # every mode starts from the same weights
    ddp = DDP(net, bucket_cap_mb=args.bucket_mb)
    hook = register_hook(ddp, "none" if mode == "nosync" else mode, args)
    warmup = args.bench_warmup
    if mode == "powersgd":   # its uncompressed start and first (allocating) step: untimed
        warmup = max(warmup, powersgd_start(args) + 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)   # as dtnn bench dist
    lossf = torch.nn.CrossEntropyLoss()
    exchange = ddp.no_sync if mode == "nosync" else contextlib.nullcontext
    times = []
    for i in range(warmup + args.bench_steps):
        if i == warmup:
            comm.Barrier()   # the timed steps start together
        opt.zero_grad(set_to_none=False)
        t = time.perf_counter()
        with exchange():
            lossf(ddp(x), y).backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return float(np.median(times)), warmup, hook["hook"]


def run_bench(args, cfg, comm, names, log):
    from mpi4py import MPI
    from dtnn.parallel.scaling import apply_world_size
    from dtnn.models import build_model

    size = comm.size
    shape = tuple(int(v) for v in args.input_shape.split(","))
    if not args.batch:
        apply_world_size(cfg, size)
    batch = args.batch or cfg.train.batch_size
    options = dict(cfg.model.options)
    model = build_model(cfg.model.name, shape, args.classes, seed=cfg.train.seed, **options)
    base = torch_twin(model)
    params = sum(p.numel() for p in base.parameters())
    grad_bytes = sum(p.numel() * p.element_size() for p in base.parameters() if p.requires_grad)
    rng = np.random.default_rng(comm.rank)   # each rank its own fixed batch
    x = torch.from_numpy(rng.standard_normal((batch,) + shape).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, args.classes, batch).astype(np.int64))
    log(f"{cfg.model.name} {options} ({params} parameters), batch {batch} per rank x "
        f"{size}, {args.bench_steps} timed steps per mode")
    rows = []
    for mode in args.modes:
        mean, warmup, hook = bench_mode(mode, base, x, y, args, comm)
        gc.collect()   # DDP holds reference cycles: free the last one before the next
        step = float(comm.allreduce(mean, op=MPI.MAX))   # the slowest rank sets the pace
        rows.append({"framework": "torch-ddp", "mode": mode, "ranks": size,
                     "batch_per_rank": batch, "global_batch": batch * size,
                     "steps": args.bench_steps, "warmup": warmup, "step_seconds": step,
                     "samples_per_second": batch * size / step, "hook": hook,
                     "params": params, "grad_bytes": grad_bytes, "bucket_mb": args.bucket_mb})
        log(f"{mode}: {step * 1e3:.2f} ms/step, {batch * size / step:.0f} samples/s")
    compute = next((r["step_seconds"] for r in rows if r["mode"] == "nosync"), None)
    for r in rows:
        r["compute_seconds"] = compute
        r["exposed_comm_seconds"] = (None if compute is None
                                     else max(0.0, r["step_seconds"] - compute))
    result = {"framework": "torch-ddp", "model": cfg.model.name, "model_options": options,
              "input_shape": list(shape), "params": params, "grad_bytes": grad_bytes,
              "ranks": size, "hosts": len(set(names)), "threads_per_rank": args.threads,
              "results": rows}
    if comm.rank == 0:
        text = json.dumps(result)
        if args.json:
            with open(args.json, "w") as fh:
                fh.write(text + "\n")
        print(text, flush=True)
    return result


# ------------------------------------------------------------------- main
def main(argv=None):
    args = parse_args(argv)
    from mpi4py import MPI
    from dtnn.config import load_config
    from dtnn.parallel.scaling import apply_world_size

    comm = MPI.COMM_WORLD
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:   # only settable before torch's first parallel work
        pass
    log = (lambda msg: print(f"ddp_peer: {msg}", file=sys.stderr, flush=True)) \
        if comm.rank == 0 else (lambda msg: None)
    cfg = load_config(args.config, args.overrides)
    if not args.bench:
        if cfg.optim.name != "sgd":
            raise SystemExit(f"ddp_peer: only optim.name = 'sgd' is mirrored, "
                             f"not {cfg.optim.name!r}")
        apply_world_size(cfg, comm.size)   # per-rank batch and (scaled) lr as `dtnn train`
    names = init_gloo(comm, args, log)
    if args.bench:
        run_bench(args, cfg, comm, names, log)
    else:
        PeerTraining(args, cfg, comm.rank, comm.size, log).run(log)
    gc.collect()   # free the DDP objects (reference cycles) while the process group lives
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
