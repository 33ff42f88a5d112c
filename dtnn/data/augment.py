"""Batch augmentation: random shift (zero-pad + random crop) and horizontal flip.

The random numbers for a batch come from ``(seed, epoch, rank, step)`` alone, so a run
that resumes at any step reproduces the same augmentation without saving rng state,
and different ranks of a distributed run draw different, non-overlapping streams.
"""
from __future__ import annotations

from typing import Optional

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from dtnn.data._opts import as_bool, as_int
from dtnn.errors import ConfigError

_AUG_TAG = 0xA6  # keeps augmentation streams apart from other users of the same seed


class Augment:
    """``Augment(shift=2, flip=False, seed=0)(x, epoch=e, rank=r, step=i) -> array``.

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
        return self.shift > 0 or self.flip

    def config(self) -> dict:
        return {"shift": self.shift, "flip": self.flip, "seed": self.seed}

    def __repr__(self) -> str:
        return f"Augment(shift={self.shift}, flip={self.flip}, seed={self.seed})"

    def rng(self, epoch: int, rank: int, step: int) -> np.random.Generator:
        return np.random.default_rng([_AUG_TAG, self.seed, int(epoch), int(rank), int(step)])

    def _pad_buffer(self, shape) -> np.ndarray:
        n = shape[0]
        buf = self._pad
        if buf is None or buf.shape[1:] != tuple(shape[1:]) or len(buf) < n:
            # zero border, interior overwritten on each call: allocated once per batch shape
            buf = self._pad = np.zeros(shape, np.float32)
        return buf[:n]

    def __call__(self, x: np.ndarray, *, epoch: int = 0, rank: int = 0, step: int = 0,
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
        rng = self.rng(epoch, rank, step)
        if self.shift > 0:
            s = self.shift
            pad = self._pad_buffer((n, c, h + 2 * s, w + 2 * s))
            pad[:, :, s:s + h, s:s + w] = x
            # window (dy, dx) of the padded image = content moved by (s - dy, s - dx)
            dy = rng.integers(0, 2 * s + 1, size=n)
            dx = rng.integers(0, 2 * s + 1, size=n)
            windows = sliding_window_view(pad, (h, w), axis=(2, 3))  # (n, c, 2s+1, 2s+1, h, w)
            out[...] = windows[np.arange(n), :, dy, dx]
        elif out is not x:
            out[...] = x
        if self.flip:
            mirror = rng.random(n) < 0.5
            out[mirror] = out[mirror, :, :, ::-1]
        return out
