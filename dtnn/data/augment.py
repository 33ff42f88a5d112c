"""Batch augmentation: random shift (zero-pad + random crop) and horizontal flip.

Each sample's random numbers come from ``(seed, epoch, sample index)`` alone -- the
sample's index in the dataset, not its rank, step or position in a batch -- through a
counter-based hash (splitmix64, vectorised over the batch).  So:

* W processes with batch B and 1 process with batch W*B see exactly the same
  augmented samples (and, with the shared sample order, train identically up to float
  rounding);
* a run that resumes at any step reproduces the same augmentation without saving any
  random state.
"""
from __future__ import annotations

import functools
from typing import Optional

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from dtnn.data._opts import as_bool, as_int
from dtnn.errors import ConfigError

_AUG_TAG = 0xA6  # keeps augmentation streams apart from other users of the same seed


def _mix(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser (uint64 arithmetic wraps modulo 2**64)."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@functools.lru_cache(maxsize=256)
def _stream_key(seed: int, epoch: int, draw: int) -> np.uint64:
    """The per-(seed, epoch, draw) part of the hash: the same for every sample of a
    batch, so it is computed once per epoch and draw, not once per batch (three
    scalar mixes were two thirds of the augmentation's time at batch 16)."""
    golden = np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        key = _mix(np.uint64((_AUG_TAG << 56) ^ (int(seed) & 0xFFFFFFFFFFFFFF)) + golden)
        key = _mix(key + np.uint64(int(epoch) & 0xFFFFFFFFFFFFFFFF) * golden)
        return _mix(key + np.uint64(int(draw)) * golden)


def sample_uniforms(seed: int, epoch: int, indices: np.ndarray, draws) -> np.ndarray:
    """float64 in [0, 1), shape (len(draws), len(indices)): row j is
    ``sample_uniform(seed, epoch, indices, draws[j])``, in one vectorised pass."""
    golden = np.uint64(0x9E3779B97F4A7C15)
    keys = np.array([_stream_key(int(seed), int(epoch), int(d)) for d in draws], np.uint64)
    with np.errstate(over="ignore"):
        z = np.asarray(indices, np.int64).astype(np.uint64) * golden
        z = _mix(keys[:, None] + z[None, :])
    return (z >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def sample_uniform(seed: int, epoch: int, indices: np.ndarray, draw: int) -> np.ndarray:
    """float64 in [0, 1), one per index: the ``draw``-th random number of each sample in
    ``epoch`` (a pure function of its arguments)."""
    return sample_uniforms(seed, epoch, indices, (draw,))[0]


class Augment:
    """``Augment(shift=2, flip=False, seed=0)(x, epoch=e, indices=idx) -> array``.

    ``indices`` are the dataset indices of the samples in ``x`` (what keys their random
    numbers); by default ``0..n-1``.

    * ``shift``: each sample is zero-padded by ``shift`` pixels on every side and a
      random H x W window is cropped back, i.e. its content moves by an independent
      uniform offset in ``[-shift, shift]`` along each axis (pixels moved out are lost,
      the uncovered border is zero).
    * ``flip``: each sample is mirrored left-right with probability 0.5.  Off by
      default: it is wrong for digits and characters.

    Works on float32 NCHW batches; all samples are processed together (no Python loop
    over samples or pixels).
    """

    def __init__(self, shift: int = 0, flip: bool = False, seed: int = 0):
        self.shift = as_int("shift", shift, minimum=0)
        self.flip = as_bool("flip", flip)
        self.seed = as_int("seed", seed, minimum=0)
        self._pad: Optional[np.ndarray] = None

    @property
    def enabled(self) -> bool:
        """True when any augmentation is switched on."""
        return self.shift > 0 or self.flip

    def config(self) -> dict:
        """The constructor arguments (JSON-able)."""
        return {"shift": self.shift, "flip": self.flip, "seed": self.seed}

    def __repr__(self) -> str:
        return f"Augment(shift={self.shift}, flip={self.flip}, seed={self.seed})"

    def _pad_buffer(self, shape) -> np.ndarray:
        n = shape[0]
        buf = self._pad
        if buf is None or buf.shape[1:] != tuple(shape[1:]) or len(buf) < n:
            # zero border, interior overwritten on each call: allocated once per batch shape
            buf = self._pad = np.zeros(shape, np.float32)
        return buf[:n]

    def __call__(self, x: np.ndarray, *, epoch: int = 0, indices: Optional[np.ndarray] = None,
                 out: Optional[np.ndarray] = None) -> np.ndarray:
        """Augmented copy of ``x`` (or written into ``out``, which may be ``x`` itself)."""
        if out is None:
            out = np.empty_like(x, dtype=np.float32)
        if not self.enabled:
            if out is not x:
                out[...] = x
            return out
        if x.ndim != 4:
            raise ConfigError(f"augmentation needs image batches (N, C, H, W), got shape "
                              f"{x.shape}; disable shift/flip for feature data")
        n, c, h, w = x.shape
        idx = np.arange(n) if indices is None else np.asarray(indices)
        if idx.shape != (n,):
            raise ValueError(f"indices must have shape ({n},), got {idx.shape}")
        if self.shift > 0:
            s = self.shift
            pad = self._pad_buffer((n, c, h + 2 * s, w + 2 * s))
            pad[:, :, s:s + h, s:s + w] = x
            # window (dy, dx) of the padded image = content moved by (s - dy, s - dx)
            span = 2 * s + 1
            dy, dx = (sample_uniforms(self.seed, epoch, idx, (0, 1)) * span).astype(np.intp)
            windows = sliding_window_view(pad, (h, w), axis=(2, 3))  # (n, c, 2s+1, 2s+1, h, w)
            out[...] = windows[np.arange(n), :, dy, dx]
        elif out is not x:
            out[...] = x
        if self.flip:
            mirror = sample_uniform(self.seed, epoch, idx, 2) < 0.5
            out[mirror] = out[mirror, :, :, ::-1]
        return out
