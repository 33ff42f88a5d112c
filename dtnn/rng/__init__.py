"""Counter-based random numbers: the same bits on every rank and thread, no state.

A :class:`Stream` names an endless sequence of 64-bit words by a key (seed, purpose)
and three counter words (what the draw is for: step, tensor, rank...).  Word j is a
pure function of (stream, j) -- Philox4x64-10, compiled in csrc/rng.c with a numpy twin
in :mod:`dtnn.rng.twins` -- so a rank computes any part of any stream without drawing
the rest first, and ranks that build the same stream draw the same numbers without
talking.  Leave the rank out of the stream for shared draws (random-k's indices), put it
in for independent ones (stochastic rounding)::

    from dtnn import rng
    s = rng.stream(seed, "randomk", step, tensor)
    idx = rng.sample_sorted(s, n, k)               # the same k of n on every rank
    u = rng.uniform_f32(rng.stream(seed, "qsgd", step, tensor, rank), n)

``DTNN_KERNELS=numpy`` selects the twins (the same bits).
"""
from __future__ import annotations

import hashlib
from typing import NamedTuple, Optional

import numpy as np

from dtnn._kernels import resolve
from dtnn.rng import twins

__all__ = ["Stream", "stream", "purpose_key", "random_u64", "uniform_f32", "sample_sorted",
           "philox4x64_10"]

_MODULE = "dtnn._kernels._rng"
_MASK64 = (1 << 64) - 1

philox4x64_10 = resolve("philox4x64_10", _MODULE, twins)
_random_u64 = resolve("random_u64", _MODULE, twins)
_uniform_f32 = resolve("uniform_f32", _MODULE, twins)
_sample_sorted = resolve("sample_sorted", _MODULE, twins)


class Stream(NamedTuple):
    """Philox key (key0, key1) and the counter's upper words (c1, c2, c3)."""
    key0: int
    key1: int
    c1: int = 0
    c2: int = 0
    c3: int = 0


def purpose_key(purpose) -> int:
    """A 64-bit word for a purpose: an int as is (mod 2**64), a string hashed (stable
    across processes and runs, unlike ``hash``)."""
    if isinstance(purpose, str):
        return int.from_bytes(hashlib.blake2b(purpose.encode(), digest_size=8).digest(),
                              "little")
    return int(purpose) & _MASK64


def stream(seed: int, purpose, *ids: int) -> Stream:
    """The stream of (seed, purpose) for up to three ids (missing ones are 0); every
    value is taken mod 2**64 (so -1 and 2**64 - 1 name the same stream)."""
    if len(ids) > 3:
        raise ValueError(f"a stream takes at most 3 ids, got {len(ids)}")
    c = [int(i) & _MASK64 for i in ids] + [0] * (3 - len(ids))
    return Stream(int(seed) & _MASK64, purpose_key(purpose), c[0], c[1], c[2])


def random_u64(s: Stream, n: int, start: int = 0,
               out: Optional[np.ndarray] = None) -> np.ndarray:
    """Words ``start .. start + n - 1`` of the stream (uint64)."""
    return _random_u64(s[0], s[1], s[2], s[3], s[4], int(start), int(n), out)


def uniform_f32(s: Stream, n: int, start: int = 0,
                out: Optional[np.ndarray] = None) -> np.ndarray:
    """n float32 uniforms in [0, 1), multiples of 2**-24, from the stream's 32-bit
    halves ``start .. start + n - 1`` (two per 64-bit word)."""
    return _uniform_f32(s[0], s[1], s[2], s[3], s[4], int(start), int(n), out)


def sample_sorted(s: Stream, n: int, k: int, out: Optional[np.ndarray] = None) -> np.ndarray:
    """A uniformly random k-subset of ``range(n)`` in increasing order (int32, n <=
    2**31): every k-subset equally likely, about min(k, n - k) words of the stream."""
    return _sample_sorted(s[0], s[1], s[2], s[3], s[4], int(n), int(k), out)
