"""Small torch models, data and loops shared by the dtnn.torch MPI tests."""
from __future__ import annotations

import io
from typing import Callable, List, Optional

import numpy as np
import torch
from torch import nn

import dtnn.torch as hvd

from ._helpers import world


def net(seed: int, bn: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    layers: List[nn.Module] = [nn.Conv2d(1, 6, 3, padding=1, bias=not bn)]
    if bn:
        layers.append(nn.BatchNorm2d(6))
    layers += [nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(6 * 6 * 6, 32), nn.ReLU(),
               nn.Linear(32, 5)]
    return nn.Sequential(*layers)


def batch(step: int, n: int, seed: int = 0):
    """The global batch of ``step``: n samples, the same on every rank."""
    g = torch.Generator().manual_seed(1000 * seed + step)
    x = torch.randn(n, 1, 12, 12, generator=g)
    y = torch.randint(0, 5, (n,), generator=g)
    x[torch.arange(n), 0, y, y] += 2.0    # learnable
    return x, y


def shard(x, y):
    """This rank's contiguous slice of a global batch."""
    r, p = hvd.rank(), hvd.size()
    k = len(x) // p
    return x[r * k:(r + 1) * k], y[r * k:(r + 1) * k]


def make_optimizer(kind: str, params):
    if kind == "sgd":
        return torch.optim.SGD(params, lr=0.05, momentum=0.9, nesterov=True,
                               weight_decay=1e-3)
    return torch.optim.Adam(params, lr=0.01, weight_decay=1e-3)


def flat_params(model: nn.Module) -> np.ndarray:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy().copy()


def flat_grads(model: nn.Module) -> np.ndarray:
    return torch.cat([p.grad.detach().reshape(-1) for p in model.parameters()]).numpy().copy()


def gathered_equal(arr: np.ndarray) -> bool:
    table = world().allgather(arr)
    return all(np.array_equal(t, table[0]) for t in table)


def roundtrip(obj):
    """torch.save + torch.load(weights_only=True): what a checkpoint goes through."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def train(model: nn.Module, opt, steps: int, start: int = 0, per_rank: int = 8,
          wrapped: Optional[nn.Module] = None, after_step: Optional[Callable] = None):
    """``steps`` steps on this rank's shard of global batches ``start..``."""
    fwd = wrapped or model
    for s in range(start, start + steps):
        x, y = shard(*batch(s, per_rank * hvd.size()))
        opt.zero_grad()
        nn.functional.cross_entropy(fwd(x), y).backward()
        opt.step()
        if after_step is not None:
            after_step(s)
