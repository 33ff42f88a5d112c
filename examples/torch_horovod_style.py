"""A Horovod PyTorch training script running on dtnn's exchange.

The only change from the Horovod version is the import line
(``import dtnn.torch as hvd`` instead of ``import horovod.torch as hvd``); compression
is any dtnn compressor spec::

    mpiexec -n 4 .venv/bin/python examples/torch_horovod_style.py
    mpiexec -n 4 .venv/bin/python examples/torch_horovod_style.py --compress topk:ratio=0.01
    launch/simcluster.sh run -- -n 4 .venv/bin/python examples/torch_horovod_style.py \\
        --compress powersgd:rank=2

Data: Fashion-MNIST from its IDX files (``dtnn.data.load_dataset``), sharded with
torch's ``DistributedSampler``.  Rank 0 prints the test accuracy after every epoch and,
with ``--checkpoint``, saves model + optimizer (including every rank's compressor state:
``state_dict(all_ranks=True)``, so ``--resume`` continues exactly).
"""
import argparse
import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

import dtnn.torch as hvd    # was: import horovod.torch as hvd
from dtnn.data import load_dataset, normalize


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return self.fc2(F.relu(self.fc1(x.flatten(1))))


def tensors(ds, limit):
    n = min(len(ds), limit) if limit else len(ds)
    return TensorDataset(torch.from_numpy(ds.x[:n]), torch.from_numpy(ds.y[:n].astype(np.int64)))


def evaluate(model, test_set, batch_size):
    """Each rank scores its shard; the sums are allreduced."""
    model.eval()
    idx = list(range(hvd.rank(), len(test_set), hvd.size()))
    correct = loss = 0.0
    with torch.no_grad():
        for i in range(0, len(idx), batch_size):
            x, y = test_set[idx[i:i + batch_size]]
            out = model(x)
            loss += float(F.cross_entropy(out, y, reduction="sum"))
            correct += float((out.argmax(1) == y).sum())
    tot = hvd.allreduce(torch.tensor([loss, correct], dtype=torch.float64), op=hvd.Sum)
    model.train()
    return float(tot[0]) / len(test_set), float(tot[1]) / len(test_set)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64, help="per rank")
    ap.add_argument("--lr", type=float, default=0.01, help="per rank (scaled by size)")
    ap.add_argument("--compress", default="none", help="dtnn compressor spec")
    ap.add_argument("--train-samples", type=int, default=0, help="use the first N (0: all)")
    ap.add_argument("--test-samples", type=int, default=0)
    ap.add_argument("--checkpoint", help="save model + optimizer here after every epoch")
    ap.add_argument("--resume", action="store_true", help="start from --checkpoint")
    args = ap.parse_args()

    hvd.init()
    torch.manual_seed(42)
    train, test = load_dataset("fashion-mnist")
    normalize(train, test)
    train_set, test_set = tensors(train, args.train_samples), tensors(test, args.test_samples)
    sampler = DistributedSampler(train_set, num_replicas=hvd.size(), rank=hvd.rank(), seed=42)
    loader = DataLoader(train_set, batch_size=args.batch_size, sampler=sampler, drop_last=True)

    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr * hvd.size(), momentum=0.9)
    first_epoch = 0
    optimizer = hvd.DistributedOptimizer(optimizer, named_parameters=model.named_parameters(),
                                         compress=args.compress, module=model)
    if args.resume and args.checkpoint and os.path.exists(args.checkpoint):
        ckpt = torch.load(args.checkpoint, weights_only=True)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        first_epoch = ckpt["epoch"]
    hvd.broadcast_parameters(model.state_dict(), root_rank=0)
    hvd.broadcast_optimizer_state(optimizer, root_rank=0)

    for epoch in range(first_epoch, args.epochs):
        sampler.set_epoch(epoch)
        for x, y in loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
        test_loss, test_acc = evaluate(model, test_set, 500)
        if args.checkpoint:
            state = optimizer.state_dict(all_ranks=True)     # collective: every rank
            if hvd.rank() == 0:
                tmp = args.checkpoint + ".tmp"
                torch.save({"model": model.state_dict(), "optimizer": state,
                            "epoch": epoch + 1}, tmp)
                os.replace(tmp, args.checkpoint)
        if hvd.rank() == 0:
            print(f"epoch {epoch + 1}: train loss {loss.item():.4f}, test loss "
                  f"{test_loss:.4f}, test accuracy {test_acc:.4f} ({hvd.size()} ranks, "
                  f"compress={args.compress})", flush=True)
    optimizer.check_replicas()      # collective: parameters bit-identical on every rank


if __name__ == "__main__":
    main()
