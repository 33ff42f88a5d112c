"""Sparsifiers: top-k (values + int32 indices, by allgather) and random-k (values
only: every rank draws the same indices from a shared seed, so payloads are
summable).  Both are biased; error feedback is on by default and fused into the
kernels (top-k: ``c += x`` rides on the first histogram pass and the selected entries
are cleared in the collecting pass).

top-k ``scope``
    ``layer`` (default): k = ceil(ratio * size) per tensor, so every layer gets
    updates; ``bucket``: one selection per bucket; ``global``: one selection over the
    whole compressed gradient (the reducer then uses a single bucket, so the exchange
    no longer overlaps backward).
"""
from __future__ import annotations

import math
from typing import List, Tuple

import numpy as np

from dtnn import rng
from dtnn.compress import kernels as K
from dtnn.compress import summable as S
from dtnn.compress.base import Compressor, Unit, register
from dtnn.errors import ConfigError


#: random-k's purpose word in its index streams (ASCII "randk")
_RANDOMK_PURPOSE = 0x72616E646B


def _check_ratio(name: str, ratio: float) -> float:
    ratio = float(ratio)
    if not 0.0 < ratio <= 1.0:
        raise ConfigError(f"{name}: ratio must be in (0, 1], got {ratio}")
    return ratio


@register("topk")
class TopK(Compressor):
    biased = True
    sparse = True

    def __init__(self, ratio: float = 0.01, scope: str = "layer"):
        super().__init__()
        self.ratio = _check_ratio("topk", ratio)
        if scope not in ("layer", "bucket", "global"):
            raise ConfigError(f"topk: scope must be layer, bucket or global, got {scope!r}")
        self.scope = scope
        self.single_bucket = scope == "global"

    def _k(self, n: int) -> int:
        return min(n, max(1, math.ceil(self.ratio * n)))

    def _segments(self, unit: Unit) -> List[Tuple[int, int, int]]:
        """(start, stop, k) of each selection."""
        if self.scope != "layer":
            return [(0, unit.size, self._k(unit.size))]
        segs = []
        for off, shape in unit.tensors:
            size = int(np.prod(shape, dtype=np.int64))
            segs.append((off, off + size, self._k(size)))
        return segs

    def _total_k(self, unit: Unit) -> int:
        return sum(k for _, _, k in self._segments(unit))

    def payload_size(self, unit):
        return 8 * self._total_k(unit)

    def compress(self, x, unit, residual=None):
        ktot = self._total_k(unit)
        payload = np.empty(8 * ktot, np.uint8)
        vals = payload[:4 * ktot].view(np.float32)
        idx = payload[4 * ktot:].view(np.int32)
        j = 0
        for a, b, k in self._segments(unit):
            iv, vv = idx[j:j + k], vals[j:j + k]
            if residual is None:
                K.topk(x[a:b], k, None, False, iv, vv)
            else:
                K.topk(residual[a:b], k, x[a:b], True, iv, vv)
            if a:
                iv += a
            j += k
        return payload

    def compress_plain(self, x, unit):
        return self.compress(x, unit, None)

    @staticmethod
    def entries(payload: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(int32 indices, float32 values) of a payload (views)."""
        ktot = payload.size // 8
        return payload[4 * ktot:].view(np.int32), payload[:4 * ktot].view(np.float32)

    def decompress_add(self, payload, out, alpha, unit):
        ktot = payload.size // 8
        K.scatter_add(payload[4 * ktot:].view(np.int32), payload[:4 * ktot].view(np.float32),
                      alpha, out)

    def describe(self):
        return f"topk(ratio={self.ratio}, scope={self.scope})"


@register("randomk")
class RandomK(Compressor):
    biased = True
    summable = True

    def __init__(self, ratio: float = 0.01):
        super().__init__()
        self.ratio = _check_ratio("randomk", ratio)

    def _k(self, n: int) -> int:
        return min(n, max(1, math.ceil(self.ratio * n)))

    def payload_size(self, unit):
        return self._k(unit.size)

    def indices(self, unit: Unit) -> np.ndarray:
        """The same on every rank: the key leaves out the rank."""
        cached = unit.scratch.get("randomk")
        if cached is not None and cached[0] == unit.step:
            return cached[1]
        # a uniformly random k-subset, sorted, from the counter-based generator
        # (dtnn.rng, C): keyed by (seed, step, unit), without the rank
        idx = rng.sample_sorted(rng.stream(self.seed, _RANDOMK_PURPOSE, unit.step, unit.index),
                                unit.size, self._k(unit.size))
        unit.scratch["randomk"] = (unit.step, idx)
        return idx

    #: with a residual, ``compress(..., move=True)`` / ``compress_ranges`` leave the input
    #: zero (the gradient moved into the residual); ``decompress_set(..., zeroed=True)``
    #: then skips its zero-fill: two memory passes over the unit instead of three
    moves_input = True

    def compress(self, x, unit, residual=None, move=False):
        idx = self.indices(unit)
        if residual is None:
            return K.gather(x, idx, None, False)
        # residual += x (x = 0 if move), then take and zero the sampled entries: one pass
        payload = np.empty(idx.size, np.float32)
        S.rk_encode(residual, x, _ONE_START, np.array([x.size], np.int64), idx, payload,
                    np.empty(idx.size, np.int32), move)
        return payload

    def compress_plain(self, x, unit):
        return self.compress(x, unit, None)

    def decompress_add(self, payload, out, alpha, unit):
        K.scatter_add(self.indices(unit), payload, alpha, out)

    def decompress_set(self, payload, out, alpha, unit, zeroed=False):
        """``zeroed``: ``out`` is known to be zero (``compress(..., move=True)`` left it so)."""
        if not zeroed:
            out.fill(0.0)
        K.scatter_add(self.indices(unit), payload, alpha, out)

    # --- units scattered over several ranges of a flat vector, without a staging copy ---
    def _flat_indices(self, unit: Unit, ranges) -> np.ndarray:
        """The step's indices mapped into the flat vector the unit's ``ranges`` cover."""
        cached = unit.scratch.get("randomk_flat")
        idx = self.indices(unit)
        if cached is not None and cached[0] is idx:
            return cached[1]
        starts = np.array([a for a, _ in ranges], np.int64)
        offs = np.cumsum([0] + [b - a for a, b in ranges[:-1]]).astype(np.int64)
        j = np.searchsorted(offs, idx, side="right") - 1
        flat = (starts[j] + (idx - offs[j])).astype(np.int32)  # flat vectors < 2**31
        unit.scratch["randomk_flat"] = (idx, flat)
        return flat

    def compress_ranges(self, flat, ranges, unit, residual=None, move=False):
        """``compress`` of the concatenated ``flat[a:b]`` ranges, the same bits, without
        copying them into a staging vector first (``move``: as ``compress``)."""
        if residual is None:
            return K.gather(flat, self._flat_indices(unit, ranges), None, False)
        # one pass over the ranges: residual += x (x = 0 if move), the sampled entries
        # taken and zeroed while their block is in cache, their flat indices for the decode
        idx = self.indices(unit)
        starts, lens = _starts_lens(unit, ranges)
        payload = np.empty(idx.size, np.float32)
        flat_idx = np.empty(idx.size, np.int32)
        S.rk_encode(residual, flat, starts, lens, idx, payload, flat_idx, move)
        unit.scratch["randomk_flat"] = (idx, flat_idx)
        return payload

    def decompress_set_ranges(self, payload, flat, ranges, alpha, unit, zeroed=False):
        """``decompress_set`` into the concatenated ``flat[a:b]`` ranges (the same bits as
        decoding into a staging vector and copying it back); ``zeroed``: they are zero
        already (``compress_ranges`` with a residual leaves them so)."""
        if not zeroed:
            for a, b in ranges:
                flat[a:b].fill(0.0)
        K.scatter_add(self._flat_indices(unit, ranges), payload, alpha, flat)

    def describe(self):
        return f"randomk(ratio={self.ratio})"



_ONE_START = np.zeros(1, np.int64)


def _starts_lens(unit: Unit, ranges) -> Tuple[np.ndarray, np.ndarray]:
    """The ranges as (flat starts, lengths) int64 vectors, cached on the unit."""
    cached = unit.scratch.get("randomk_ranges")
    if cached is not None and cached[0] is ranges:
        return cached[1], cached[2]
    starts = np.array([a for a, _ in ranges], np.int64)
    lens = np.array([b - a for a, b in ranges], np.int64)
    unit.scratch["randomk_ranges"] = (ranges, starts, lens)
    return starts, lens
