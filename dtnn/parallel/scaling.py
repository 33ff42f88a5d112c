"""Batch size and learning rate as functions of the world size.

``train.batch_size`` is the batch of *one process*: with W processes one optimizer
step sees W x batch_size samples (the global batch).  ``train.global_batch_size``
(when > 0) fixes the global batch instead; each process then takes
``global_batch_size / W`` (it must divide evenly).

``optim.scale_lr_by_world = true`` applies the linear scaling rule: the configured
``optim.lr`` is the rate for one process's batch and is multiplied by W, the ratio of
the global batch to the per-process batch (use ``schedule.warmup_epochs`` with it:
large-batch runs need a few epochs of warm-up).

Resuming with a different world size works (the sample order depends on
(seed, epoch) only), but with a per-process ``batch_size`` the global batch, and
with ``scale_lr_by_world`` the rate, change with W; set ``global_batch_size`` to keep
the optimisation the same.
"""
from __future__ import annotations

from dtnn.errors import ConfigError


def per_rank_batch(cfg, size: int) -> int:
    """The batch each of ``size`` processes takes per step."""
    gbs = int(getattr(cfg.train, "global_batch_size", 0) or 0)
    if gbs <= 0:
        return int(cfg.train.batch_size)
    if gbs % size:
        raise ConfigError(f"train.global_batch_size={gbs} is not divisible by the "
                          f"{size} processes of this job")
    return gbs // size


def global_batch(cfg, size: int) -> int:
    return per_rank_batch(cfg, size) * size


def scaled_lr(cfg, size: int) -> float:
    """``optim.lr`` times the world size if ``optim.scale_lr_by_world``."""
    lr = float(cfg.optim.lr)
    if getattr(cfg.optim, "scale_lr_by_world", False):
        return lr * size
    return lr


def apply_world_size(cfg, size: int) -> str:
    """Set ``train.batch_size`` (per process) and ``optim.lr`` for ``size`` processes,
    in place; returns a one-line description for the log.  Idempotent only if called
    once per config (call it on a freshly resolved config)."""
    b = per_rank_batch(cfg, size)
    lr = scaled_lr(cfg, size)
    cfg.train.batch_size = b
    cfg.optim.lr = lr
    return (f"{size} process(es) x batch {b} = global batch {b * size}, lr {lr:g}"
            + (" (scaled by world size)" if getattr(cfg.optim, "scale_lr_by_world", False)
               else ""))
