"""A DistributedDataParallel-style PyTorch script running on dtnn's exchange.

From DDP: drop ``torch.distributed.init_process_group`` and wrap the model in
``dtnn.torch.DataParallel`` instead of ``DistributedDataParallel`` (compression is
an argument, not a hook)::

    mpiexec -n 4 .venv/bin/python examples/torch_ddp_style.py --compress powersgd:rank=2
    mpiexec -n 2 .venv/bin/python examples/torch_ddp_style.py --accumulate 2

``--accumulate K`` sums the gradients of K micro-batches per step with ``no_sync()``,
as with DDP.  Uneven shards are handled with ``dtnn.torch.join``.
"""
import argparse
import contextlib

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

import dtnn.torch
from dtnn.data import load_dataset, normalize


def make_model():
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 10))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=32, help="per rank and micro-batch")
    ap.add_argument("--accumulate", type=int, default=1)
    ap.add_argument("--compress", default="none")
    ap.add_argument("--test-samples", type=int, default=2000)
    args = ap.parse_args()

    dtnn.torch.init()
    rank, size = dtnn.torch.rank(), dtnn.torch.size()
    train, test = load_dataset("fashion-mnist")
    normalize(train, test)
    x_all, y_all = torch.from_numpy(train.x), torch.from_numpy(train.y.astype(np.int64))

    torch.manual_seed(0)
    model = dtnn.torch.DataParallel(make_model(), compress=args.compress)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    # this rank's samples; the last rank gets fewer steps (uneven inputs)
    mine = torch.arange(rank, len(y_all), size)
    steps = args.steps - (rank == size - 1 and size > 1)
    per_step = args.batch_size * args.accumulate
    for step in range(steps):
        idx = mine[(step * per_step) % len(mine):][:per_step]
        optimizer.zero_grad()
        for k in range(args.accumulate):
            xb, yb = x_all[idx[k::args.accumulate]], y_all[idx[k::args.accumulate]]
            last = k == args.accumulate - 1
            with model.no_sync() if not last else contextlib.nullcontext():
                (F.cross_entropy(model(xb), yb) / args.accumulate).backward()
        optimizer.step()
    dtnn.torch.join(optimizer)   # ranks with fewer steps shadow the others' exchanges

    model.eval()
    n = min(args.test_samples, len(test.y))
    with torch.no_grad():
        sel = slice(rank, n, size)
        pred = model(torch.from_numpy(test.x[sel])).argmax(1)
        correct = float((pred == torch.from_numpy(test.y[sel].astype(np.int64))).sum())
    total = dtnn.torch.allreduce(torch.tensor([correct]), op=dtnn.torch.Sum)
    model.check_replicas()
    if rank == 0:
        print(f"{args.steps} steps on {size} rank(s), compress={args.compress}: test "
              f"accuracy {float(total[0]) / n:.4f}", flush=True)


if __name__ == "__main__":
    main()
