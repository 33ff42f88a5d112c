"""Shared pieces of the MPI tests: tiny models, a fixed dataset, the distributed
training loop and serial references, and collective assertions.

Every test is size-agnostic (it works for any world size >= 2) and asserts
collectively: each rank computes a verdict, the verdicts are allgathered, and every
rank asserts on the whole table, so all ranks pass or fail together and a failure
names the ranks.
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from dtnn.data import BatchLoader, Dataset
from dtnn.layers.batchnorm import BatchNorm
from dtnn.layers.activation import ReLU
from dtnn.layers.conv import Conv2D
from dtnn.layers.dense import Dense
from dtnn.layers.dropout import Dropout
from dtnn.layers.flatten import Flatten
from dtnn.layers.loss import SoftmaxCrossEntropy
from dtnn.layers.pooling import MaxPool2D
from dtnn.models import Model
from dtnn.optim import build_optimizer


def world():
    from mpi4py import MPI
    return MPI.COMM_WORLD


def assert_all(ok: bool, what: str, detail: str = "") -> None:
    """Collective assert: fails on every rank if ``ok`` is false on any rank."""
    table = world().allgather((bool(ok), detail))
    bad = [(r, d) for r, (good, d) in enumerate(table) if not good]
    assert not bad, f"{what} failed on rank(s) " + "; ".join(f"{r}: {d}" for r, d in bad)


def assert_same_everywhere(value, what: str) -> None:
    table = world().allgather(value)
    bad = [r for r, v in enumerate(table) if v != table[0]]
    assert not bad, f"{what}: rank(s) {bad} differ from rank 0 ({table})"


def max_rel_diff(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(1e-12, float(np.max(np.abs(b)))))


# --- models --------------------------------------------------------------------------
def dense_net(seed: int, bn: bool = False, dropout: float = 0.0) -> Model:
    layers = [Dense(24, init="he", bias=not bn)]
    if bn:
        layers.append(BatchNorm())
    layers.append(ReLU())
    if dropout:
        layers.append(Dropout(dropout))
    layers += [Dense(16, init="he"), ReLU(), Dense(5)]
    return Model(layers, (12,), name="dense").build(seed)


def conv_net(seed: int, bn: bool = True) -> Model:
    # no conv bias before BN: its true gradient is 0, and Adam would turn the rounding
    # noise in it into full-size steps of random sign (different in every run)
    # pinned variant: runs are compared bit for bit, bestof's tuning follows the clock
    layers = [Conv2D(4, 3, padding=1, bias=not bn, algorithm="im2col")]
    if bn:
        layers.append(BatchNorm())
    layers += [ReLU(), MaxPool2D(2), Flatten(), Dense(5)]
    return Model(layers, (1, 8, 8), name="conv").build(seed)


def dataset(kind: str = "dense", n: int = 256) -> Dataset:
    """The same small classification set on every rank."""
    rng = np.random.default_rng(1234)
    shape = (12,) if kind == "dense" else (1, 8, 8)
    y = rng.integers(0, 5, n)
    x = rng.standard_normal((n,) + shape).astype(np.float32)
    x.reshape(n, -1)[:, :5] += 1.5 * np.eye(5, dtype=np.float32)[y]  # learnable signal
    return Dataset(x, y, [str(c) for c in range(5)], name=f"tiny-{kind}")


OPTIMIZERS = {
    "sgd": dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "adam": dict(lr=0.01, weight_decay=1e-3),
}


# --- training loops --------------------------------------------------------------------
def deferred_update_run(ctx, opt_name: str, options, steps: int):
    """The deferred-update tests' setting (tests/mpi/test_defer_*.py): a BN conv net
    seeded by rank, ``opt_name`` from OPTIMIZERS under a DistributedOptimizer with
    ``options`` and a cosine schedule over ``steps``, and this rank's shard of the conv
    data set; returns (model, distributed optimizer, loader)."""
    from dtnn.optim.schedules import build_schedule
    from dtnn.parallel import DistributedOptimizer
    model = conv_net(ctx.rank + 100, bn=True)
    inner = build_optimizer(opt_name, model, **OPTIMIZERS[opt_name])
    opt = DistributedOptimizer(inner, ctx=ctx, options=options,
                               schedule=build_schedule("cosine", 0.05, steps, epochs=1))
    loader = BatchLoader(dataset("conv"), 8, shuffle=True, seed=7, rank=ctx.rank,
                         world_size=ctx.size)
    return model, opt, loader


def train_distributed(ctx, factory: Callable[[int], Model], ds: Dataset, batch: int,
                      steps: int, opt: str = "sgd", options: Optional[Dict] = None):
    """Each rank builds its replica with a *different* seed (sync_model must fix that)."""
    model = factory(ctx.rank + 100)
    optimizer = build_optimizer(opt, model, **OPTIMIZERS[opt])
    reducer = ctx.make_reducer(model, options)
    ref_model = factory(100)  # what rank 0 built: the expected start
    ctx.sync_model(model, optimizer)
    assert_all(np.array_equal(model.flat_params, ref_model.flat_params), "sync_model")
    loss_fn = SoftmaxCrossEntropy()
    loader = BatchLoader(ds, batch, shuffle=True, seed=7, rank=ctx.rank, world_size=ctx.size)
    done = 0
    epoch = 0
    while done < steps:
        for xb, yb in loader.epoch(epoch):
            logits = model.forward(xb, training=True)
            loss_fn.forward(logits, yb)
            reducer.start_step()
            model.backward(loss_fn.backward(), on_grads_ready=reducer.on_grads_ready)
            reducer.finish_step()
            optimizer.step()
            done += 1
            if done == steps:
                break
        epoch += 1
    return model, optimizer, reducer


def train_reference(factory: Callable[[int], Model], ds: Dataset, batch: int, world_size: int,
                    steps: int, opt: str = "sgd", per_shard_bn: bool = False) -> Model:
    """One process, global batch ``world_size * batch``, same sample order.

    ``per_shard_bn``: emulate what data parallelism computes with BatchNorm: each of the
    ``world_size`` shards is normalised with its own statistics (gradients averaged over
    shards, running statistics = mean of the per-shard updates)."""
    model = factory(100)
    optimizer = build_optimizer(opt, model, **OPTIMIZERS[opt])
    loss_fn = SoftmaxCrossEntropy()
    loader = BatchLoader(ds, batch * world_size, shuffle=True, seed=7, rank=0, world_size=1)
    done = 0
    epoch = 0
    while done < steps:
        for xb, yb in loader.epoch(epoch):
            if not per_shard_bn:
                logits = model.forward(xb, training=True)
                loss_fn.forward(logits, yb)
                model.backward(loss_fn.backward())
            else:
                start_bufs = {k: v.copy() for k, v in model.buffers().items()}
                grad_sum = np.zeros_like(model.flat_grads)
                buf_sum = {k: np.zeros(v.shape, np.float64) for k, v in start_bufs.items()}
                for r in range(world_size):
                    model.load_buffers(start_bufs)
                    sl = slice(r * batch, (r + 1) * batch)
                    logits = model.forward(xb[sl], training=True)
                    loss_fn.forward(logits, yb[sl])
                    model.backward(loss_fn.backward())
                    grad_sum += model.flat_grads
                    for k, v in model.buffers().items():
                        buf_sum[k] += v
                model.flat_grads[...] = grad_sum / world_size
                model.load_buffers({k: (v / world_size).astype(np.float32)
                                    for k, v in buf_sum.items()})
            optimizer.step()
            done += 1
            if done == steps:
                break
        epoch += 1
    return model


def gather_params(model: Model) -> List[np.ndarray]:
    return world().allgather(model.flat_params.copy())
