"""Mini-batches for (distributed) training, and evaluation shards.

Distributed semantics of ``BatchLoader`` (B = per-rank batch, W = world size,
G = B * W the global batch):

* each epoch draws ONE permutation of the dataset from ``(seed, epoch)``; every rank
  computes the same one, so no communication is needed;
* global step i covers ``perm[i*G:(i+1)*G]`` and rank r takes the contiguous
  sub-block ``[r*B:(r+1)*B]`` of it.  W ranks with batch B therefore process exactly
  the samples of one rank with batch W*B, step for step, and (with gradients
  averaged) follow the same optimisation path up to floating-point order;
* every rank runs ``steps_per_epoch`` steps, so collective calls stay matched:
    - ``drop_last=True`` (default): ``N // G`` steps; the tail that does not fill a
      global batch is skipped this epoch (it is a different tail each epoch);
    - ``drop_last=False`` and W == 1: ``ceil(N / B)`` steps, the last batch smaller;
    - ``drop_last=False`` and W > 1: ``ceil(N / G)`` steps; the permutation is padded
      by wrapping around to its start so that every rank gets a full batch of B on
      every step (a few samples are seen twice in the last step).  This keeps the
      batch size identical on all ranks; do not use it for evaluation, where the
      duplicates would be counted twice: use ``shard`` instead.

``shuffle=False`` uses the identity permutation.

The yielded arrays are **reused buffers**: the next step overwrites them.  Copy a batch
if you need to keep it past the next iteration.
"""
from __future__ import annotations

from typing import Iterator, Optional, Tuple

import numpy as np

from dtnn.data._opts import as_bool, as_int
from dtnn.data.augment import Augment
from dtnn.data.dataset import Dataset
from dtnn.errors import ConfigError

_PERM_TAG = 0x5E  # keeps permutation streams apart from other users of the same seed


def epoch_permutation(n: int, seed: int, epoch: int, shuffle: bool = True) -> np.ndarray:
    """The sample order of one epoch, shared by all ranks (int64, length n)."""
    if not shuffle:
        return np.arange(n, dtype=np.int64)
    return np.random.default_rng([_PERM_TAG, int(seed), int(epoch)]).permutation(n)


class BatchLoader:
    """Per-rank mini-batches of a ``Dataset``; see the module docstring for semantics."""

    def __init__(self, ds: Dataset, batch_size: int, shuffle: bool = True, seed: int = 0,
                 drop_last: bool = True, rank: int = 0, world_size: int = 1,
                 augment: Optional[Augment] = None):
        self.ds = ds
        self.batch_size = as_int("batch_size", batch_size, minimum=1)
        self.shuffle = as_bool("shuffle", shuffle)
        self.seed = as_int("seed", seed, minimum=0)
        self.drop_last = as_bool("drop_last", drop_last)
        self.world_size = as_int("world_size", world_size, minimum=1)
        self.rank = as_int("rank", rank, minimum=0)
        if self.rank >= self.world_size:
            raise ConfigError(f"rank {self.rank} out of range for world size {self.world_size}")
        self.augment = augment if augment is not None and augment.enabled else None
        if self.augment is not None and ds.x.ndim != 4:
            raise ConfigError(f"{ds.name}: augmentation needs image data (N, C, H, W), got "
                              f"samples of shape {ds.sample_shape}")
        n, g = len(ds), self.global_batch
        if self.drop_last:
            steps = n // g
        else:
            steps = -(-n // g)
        if steps == 0 and (self.drop_last or n > 0):
            raise ConfigError(f"{ds.name}: {n} samples do not fill one global batch of {g} "
                              f"({self.batch_size} per rank x {self.world_size} ranks); lower "
                              "the batch size or set drop_last=False")
        self.steps_per_epoch = steps
        self._x = np.empty((self.batch_size,) + ds.x.shape[1:], np.float32)
        self._y = np.empty(self.batch_size, np.int64)

    @property
    def global_batch(self) -> int:
        """Samples per step over all processes (``batch_size * world_size``)."""
        return self.batch_size * self.world_size

    def __len__(self) -> int:
        return self.steps_per_epoch

    def order(self, epoch: int) -> np.ndarray:
        """Epoch permutation, wrap-padded to ``steps * G`` when that is the policy."""
        perm = epoch_permutation(len(self.ds), self.seed, epoch, self.shuffle)
        total = self.steps_per_epoch * self.global_batch
        if not self.drop_last and self.world_size > 1 and total > len(perm):
            perm = np.resize(perm, total)  # repeats from the start
        return perm

    def _slice(self, order: np.ndarray, step: int) -> np.ndarray:
        lo = step * self.global_batch + self.rank * self.batch_size
        return order[lo:lo + self.batch_size]

    def batch_indices(self, epoch: int, step: int) -> np.ndarray:
        """Dataset indices of this rank's batch at ``(epoch, step)``."""
        if not 0 <= step < self.steps_per_epoch:
            raise IndexError(f"step {step} out of range (0..{self.steps_per_epoch - 1})")
        return self._slice(self.order(epoch), step)

    def epoch(self, epoch: int, start_step: int = 0) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
        """Yield ``(xb, yb)`` for steps ``start_step .. steps_per_epoch - 1`` of ``epoch``.

        ``xb`` is float32 C-contiguous, ``yb`` int64; both are overwritten next step.
        ``start_step`` resumes mid-epoch with identical batches (and augmentation).
        """
        order = self.order(epoch)
        x, y = self.ds.x, self.ds.y
        for step in range(int(start_step), self.steps_per_epoch):
            idx = self._slice(order, step)
            m = len(idx)
            xb, yb = self._x[:m], self._y[:m]
            np.take(x, idx, axis=0, out=xb, mode="clip")  # mode != raise: unbuffered
            np.take(y, idx, axis=0, out=yb, mode="clip")
            if self.augment is not None:
                self.augment(xb, epoch=epoch, indices=idx, out=xb)  # keyed by sample
            yield xb, yb


def shard_range(n: int, rank: int, world_size: int) -> Tuple[int, int]:
    """``[lo, hi)`` of rank's contiguous shard of n items; sizes differ by at most one."""
    if world_size < 1 or not 0 <= rank < world_size:
        raise ConfigError(f"rank {rank} out of range for world size {world_size}")
    base, extra = divmod(n, world_size)
    lo = rank * base + min(rank, extra)
    return lo, lo + base + (1 if rank < extra else 0)


def shard(ds: Dataset, rank: int, world_size: int) -> Dataset:
    """Rank's disjoint contiguous part of ``ds`` (for evaluation: the union over ranks is
    ``ds`` exactly once).  Evaluate it with ``BatchLoader(part, B, shuffle=False,
    drop_last=False)``, sum the confusion matrices across ranks, then
    ``metrics.report_from_confusion``.  Shards may be empty when ``len(ds) < world_size``.
    """
    lo, hi = shard_range(len(ds), rank, world_size)
    return Dataset(ds.x[lo:hi], ds.y[lo:hi], list(ds.classes), f"{ds.name}[{rank}/{world_size}]",
                   dict(ds.meta))
