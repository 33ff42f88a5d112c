"""PyTorch DDP peer of a dtnn training run: same model, data order, optimizer and schedule.

One process per MPI rank (rank/size come from mpi4py), torch.distributed with the gloo
backend over TCP; so it runs under the same launchers as ``dtnn train``:

    mpiexec -n 2 python benchmarks/ddp_peer.py -c configs/simplecnn.toml --mode fp16
    launch/simcluster.sh run -- -n 4 python benchmarks/ddp_peer.py -c configs/simplecnn.toml \\
        --mode powersgd --target-accuracy 0.90 --out runs/ddp/metrics.jsonl

What is shared with dtnn (so the two sides differ only in the framework):

* the model: built by dtnn from ``[model]`` (same seed) and mirrored into nn.Sequential
  with the same weights (``torch_twin``);
* the data: ``dtnn.data.load_dataset`` + ``normalize``, and dtnn's ``BatchLoader``
  (same per-epoch sample order, the same per-rank slice of every global batch, the same
  shift augmentation);
* SGD with momentum/nesterov and weight decay on exactly the parameters dtnn decays, the
  learning rate of dtnn's schedule at every step, the per-rank batch
  (``train.global_batch_size / W`` when set), label smoothing;
* evaluation sharded over ranks (rank r takes samples r, r+W, ...) and summed.

Modes: ``none`` (plain allreduce of fp32 buckets), ``fp16`` (``fp16_compress_hook``) and
``powersgd`` (``PowerSGDState`` rank 2 by default, with error feedback and warm start;
the first ``--powersgd-start-iter`` steps are exchanged uncompressed as torch requires).
BatchNorm buffers: DDP broadcasts rank 0's every step (dtnn averages them).

Rank 0 prints one JSON line per epoch (and appends it to ``--out``): the fields of dtnn's
``metrics.jsonl`` (epoch, step, lr, train_loss, train_accuracy, epoch_seconds,
samples_per_second, processes, eval_loss, eval_accuracy) plus ``step_seconds``,
``wall_seconds`` (since the start of training, evaluation included),
``time_to_accuracy`` (wall seconds at the first epoch whose eval_accuracy reached
``--target-accuracy``, else null), ``framework``, ``mode`` and ``exchange``.
"""
from __future__ import annotations

import argparse
import datetime
import fcntl
import json
import os
import socket
import struct
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(1, ROOT)

MODES = ("none", "fp16", "powersgd")


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
    ap.add_argument("--max-steps", type=int, default=0,
                    help="stop each epoch after this many steps (smoke tests; overrides "
                         "train.max_steps_per_epoch)")
    ap.add_argument("--out", help="append the JSON lines here (rank 0)")
    ap.add_argument("--iface", help="network interface for gloo and the rendezvous "
                    "(default: $FI_TCP_IFACE, set by launch/simcluster.sh, else loopback "
                    "when all ranks share a host)")
    return ap.parse_args(argv)


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


def register_hook(ddp, mode, args):
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks, powerSGD_hook
    if mode == "fp16":
        ddp.register_comm_hook(None, default_hooks.fp16_compress_hook)
        return {"hook": "fp16_compress_hook"}
    if mode == "powersgd":
        state = powerSGD_hook.PowerSGDState(
            process_group=None, matrix_approximation_rank=args.powersgd_rank,
            start_powerSGD_iter=max(2, args.powersgd_start_iter),
            use_error_feedback=True, warm_start=True)
        ddp.register_comm_hook(state, powerSGD_hook.powerSGD_hook)
        return {"hook": "powerSGD_hook", "rank": args.powersgd_rank,
                "start_iter": max(2, args.powersgd_start_iter)}
    return {"hook": None}


def main(argv=None):
    args = parse_args(argv)
    from mpi4py import MPI
    comm = MPI.COMM_WORLD
    rank, size = comm.rank, comm.size

    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel as DDP
    torch.set_num_threads(args.threads)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass

    from dtnn.config import load_config
    from dtnn.data import Augment, BatchLoader, load_dataset, normalize
    from dtnn.dist.scaling import apply_world_size
    from dtnn.engine.session import make_schedule
    from dtnn.models import build_model
    from torch_twin import torch_twin

    cfg = load_config(args.config, args.overrides)
    if cfg.optim.name != "sgd":
        raise SystemExit(f"ddp_peer: only optim.name = 'sgd' is mirrored, not {cfg.optim.name!r}")
    apply_world_size(cfg, size)     # per-rank batch and (scaled) lr exactly as `dtnn train`
    batch, lr0 = cfg.train.batch_size, cfg.optim.lr

    addr, port, iface, names = rendezvous(comm, args.iface)
    if iface:
        os.environ["GLOO_SOCKET_IFNAME"] = iface
    dist.init_process_group("gloo", init_method=f"tcp://{addr}:{port}", rank=rank,
                            world_size=size, timeout=datetime.timedelta(minutes=5))
    log = (lambda msg: print(f"ddp_peer: {msg}", file=sys.stderr, flush=True)) if rank == 0 \
        else (lambda msg: None)
    log(f"{size} ranks on {len(set(names))} host(s) {sorted(set(names))}, gloo via "
        f"{iface or 'default interface'}, master {addr}:{port}, mode {args.mode}")

    d = cfg.data
    train, test = load_dataset(d.source, d.path or None, **d.options)
    if d.normalize:
        normalize(train, *(t for t in (test,) if t is not None))
    if test is None:
        raise SystemExit("ddp_peer: the dataset has no test split to evaluate on")
    augment = None
    if d.augment_shift or d.augment_flip:
        augment = Augment(shift=d.augment_shift, flip=d.augment_flip, seed=cfg.train.seed)
    loader = BatchLoader(train, batch, shuffle=True, seed=cfg.train.seed, drop_last=True,
                         rank=rank, world_size=size, augment=augment)

    opts = dict(cfg.model.options)
    model = build_model(cfg.model.name, train.x.shape[1:], len(train.classes),
                        seed=cfg.train.seed, **opts)
    net = torch_twin(model)
    nparams = sum(p.numel() for p in net.parameters())
    ddp = DDP(net, bucket_cap_mb=args.bucket_mb)
    exchange = register_hook(ddp, args.mode, args)
    exchange["bucket_mb"] = args.bucket_mb
    exchange["params"] = nparams
    opt = torch.optim.SGD(decay_groups(model, net, cfg.optim.weight_decay), lr=lr0,
                          momentum=cfg.optim.momentum, nesterov=cfg.optim.nesterov)
    schedule = make_schedule(cfg, loader.steps_per_epoch)
    lossf = torch.nn.CrossEntropyLoss(label_smoothing=cfg.train.label_smoothing)
    max_steps = args.max_steps or cfg.train.max_steps_per_epoch
    steps = min(loader.steps_per_epoch, max_steps) if max_steps else loader.steps_per_epoch
    log(f"{cfg.model.name} ({nparams} parameters), batch {batch} per rank x {size}, "
        f"{steps} steps/epoch, {cfg.train.epochs} epochs, {schedule.describe()}")

    eval_idx = np.arange(rank, len(test.y), size)
    out_fh = open(args.out, "a") if (args.out and rank == 0) else None
    step = 0
    reached = None
    dist.barrier()
    t_start = time.perf_counter()
    for epoch in range(cfg.train.epochs):
        ddp.train()
        loss_sum = correct = seen = 0.0
        t0 = time.perf_counter()
        for i, (xb, yb) in enumerate(loader.epoch(epoch)):
            if i >= steps:
                break
            lr = schedule.lr_at(step)
            for g in opt.param_groups:
                g["lr"] = lr
            x, y = torch.from_numpy(xb), torch.from_numpy(yb)
            opt.zero_grad(set_to_none=False)
            out = ddp(x)
            loss = lossf(out, y)
            loss.backward()
            opt.step()
            step += 1
            lv = float(loss.detach())
            if not np.isfinite(lv):
                raise SystemExit(f"ddp_peer: loss became {lv} at step {step}")
            loss_sum += lv * len(yb)
            correct += int((out.argmax(1) == y).sum())
            seen += len(yb)
        seconds = time.perf_counter() - t0
        # evaluation, sharded like dtnn's
        ddp.eval()
        e_loss = e_correct = 0.0
        with torch.no_grad():
            for s0 in range(0, len(eval_idx), cfg.train.eval_batch_size):
                sel = eval_idx[s0:s0 + cfg.train.eval_batch_size]
                xb, yb = torch.from_numpy(test.x[sel]), torch.from_numpy(test.y[sel])
                logits = net(xb)
                e_loss += float(torch.nn.functional.cross_entropy(logits, yb, reduction="sum"))
                e_correct += int((logits.argmax(1) == yb).sum())
        tot = torch.tensor([loss_sum, correct, seen, seconds, e_loss, e_correct],
                           dtype=torch.float64)
        dist.all_reduce(tot)
        wall = time.perf_counter() - t_start
        epoch_seconds = float(tot[3]) / size
        acc = float(tot[5]) / len(test.y)
        if reached is None and acc >= args.target_accuracy:
            reached = wall
        record = {"epoch": epoch + 1, "step": step, "lr": opt.param_groups[0]["lr"],
                  "train_loss": float(tot[0] / max(1.0, tot[2])),
                  "train_accuracy": float(tot[1] / max(1.0, tot[2])),
                  "epoch_seconds": epoch_seconds,
                  "samples_per_second": float(tot[2]) / max(epoch_seconds, 1e-9),
                  "processes": size,
                  "eval_loss": float(tot[4]) / len(test.y), "eval_accuracy": acc,
                  "step_seconds": epoch_seconds / max(1, steps),
                  "wall_seconds": wall,
                  "target_accuracy": args.target_accuracy, "time_to_accuracy": reached,
                  "framework": "torch-ddp", "mode": args.mode, "exchange": exchange}
        if rank == 0:
            line = json.dumps(record)
            print(line, flush=True)
            if out_fh:
                out_fh.write(line + "\n")
                out_fh.flush()
    if out_fh:
        out_fh.close()
    dist.barrier()
    dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
