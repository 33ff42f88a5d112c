"""``dist.fuse_update``: the quantised ring's averaged gradient held as its final
payloads until the optimizer's update, which decodes it block by block in L1
(``RangeUpdate.decoded``, C in csrc/decode_update.c) instead of reading it back from
the flat gradient after ``kernels.decode_pieces`` wrote it there.  The decoded sum's
cold write and its re-read by the update are gone; the bits are those of decode, then
update (both elementwise, the same float32 operations).

What the flat gradient holds: a held bucket's compressed ranges keep this rank's own
(local, not averaged) gradient until the update consumes the payloads.  Whatever needs
the averaged gradient itself materialises it first (``HeldDecodes.materialize``: the
unfused decode): ``DistributedOptimizer.synchronize()`` (the documented way to look
at or clip the averaged gradients), clipping, an optimizer without a ``decoded``
kernel (Adam), ``finish_step()`` without ``on_bucket``, a discarded deferred step.
The divergence guard checks held ranges without decoding them when the payloads'
scales prove every element finite and small (``proves_finite``), and otherwise
materialises and runs its usual test: the same decision either way.
"""
from __future__ import annotations

from typing import Callable, List, NamedTuple, Optional, Tuple

import numpy as np

from dtnn.compress import kernels as K


class HeldChunk(NamedTuple):
    """One chunk's final payload: piece k, elements [bounds[k], bounds[k+1]) of the
    payload, is the gradient of flat elements offs[k] + (0 .. len)."""
    kind: str
    payload: np.ndarray
    n: int
    chunk: int
    levels: float
    bounds: np.ndarray
    offs: np.ndarray


class Held:
    """A bucket's held payloads: ``ranges`` (the flat ranges they cover, sorted and
    disjoint), the chunks, the decode scale ``alpha`` (1/N) and ``release`` (called
    once consumed: the payload buffers may then be reused)."""

    __slots__ = ("ranges", "chunks", "alpha", "release", "lo", "hi")

    def __init__(self, ranges: List[Tuple[int, int]], chunks: List[HeldChunk], alpha: float,
                 release: Optional[Callable[[], None]] = None):
        self.ranges, self.chunks, self.alpha, self.release = ranges, chunks, alpha, release
        self.lo, self.hi = ranges[0][0], ranges[-1][1]

    def bound(self) -> float:
        """An upper bound of |decoded element| (nan / inf if a scale is not finite)."""
        top = 0.0
        for c in self.chunks:
            nc = -(-c.n // c.chunk)
            if nc == 0:
                continue
            scales = c.payload[:4 * nc].view(np.float32)
            # int8 / QSGD-8: |code| <= levels (< 128), value = code * scale / levels
            per = 128.0 / c.levels if c.kind == "int8" else 1.0
            top = max(top, float(np.max(np.abs(scales.astype(np.float64)))) * per)
        return top * abs(self.alpha) * 1.01


class HeldDecodes:
    """The held buckets of the exchange over ``grads`` (the flat gradient)."""

    #: sums of squares below this are finite in float32 whatever the order (FLT_MAX 3.4e38)
    _SAFE = 1e36

    def __init__(self, grads: np.ndarray):
        self.grads = grads
        self.items: List[Held] = []

    def __bool__(self) -> bool:
        return bool(self.items)

    def hold(self, held: Held) -> None:
        self.items.append(held)

    def take(self, lo: int, hi: int) -> List[Held]:
        """Remove and return the held buckets inside [lo, hi) (one straddling a bound
        is decoded into the gradient instead: never the case for bucket ranges)."""
        out, keep = [], []
        for h in self.items:
            if h.hi <= lo or h.lo >= hi:
                keep.append(h)
            elif lo <= h.lo and h.hi <= hi:
                out.append(h)
            else:
                self._decode(h)
        self.items = keep
        return out

    def _decode(self, h: Held) -> None:
        g = self.grads
        for c in h.chunks:
            pieces = [(int(c.bounds[k]), int(c.bounds[k + 1]),
                       g[int(c.offs[k]):int(c.offs[k]) + int(c.bounds[k + 1] - c.bounds[k])])
                      for k in range(len(c.offs))]
            K.decode_pieces(c.kind, c.payload, c.n, c.chunk, h.alpha, c.levels, pieces)
        if h.release is not None:
            h.release()

    def materialize(self, lo: int = 0, hi: Optional[int] = None) -> None:
        """Decode the held buckets in [lo, hi) (all by default) into the gradient."""
        for h in self.take(lo, self.grads.size if hi is None else hi):
            self._decode(h)

    def run(self, update, lo: int, hi: int, items: Optional[List[Held]] = None) -> None:
        """``update(lo, hi)`` with the held buckets' ranges updated from their payloads
        (``update.decoded``), the rest (the small tensors between) from the gradient.
        An update without ``decoded`` (Adam) gets the gradient materialised first."""
        if items is None:
            items = self.take(lo, hi)
        decoded = getattr(update, "decoded", None)
        if decoded is None:
            for h in items:
                self._decode(h)
            update(lo, hi)
            return
        at = lo
        for a, b in sorted(r for h in items for r in h.ranges):
            if a > at:
                update(at, a)
            at = b
        if at < hi:
            update(at, hi)
        for h in items:
            for c in h.chunks:
                decoded(c.kind, c.payload, c.n, c.chunk, h.alpha, c.levels, c.bounds, c.offs)
            if h.release is not None:
                h.release()

    def proves_finite(self, lo: int, hi: int, update) -> Optional[List[Held]]:
        """The held buckets in [lo, hi), taken, when their scales and the gradient of
        the rest of the range prove the range's norm finite (then the guard's test,
        ``grad_norm`` non-finite, cannot fire); None otherwise (nothing taken)."""
        if getattr(update, "decoded", None) is None:
            return None
        items = [h for h in self.items if lo <= h.lo and h.hi <= hi]
        if not items:
            return None
        n_held = sum(b - a for h in items for a, b in h.ranges)
        top = max(h.bound() for h in items)
        if not (np.isfinite(top) and top * top * n_held < self._SAFE):
            return None
        rest, at = 0.0, lo
        for a, b in sorted(r for h in items for r in h.ranges) + [(hi, hi)]:
            if a > at:
                part = self.grads[at:a].astype(np.float64)
                rest += float(np.dot(part, part))
            at = max(at, b)
        if not (np.isfinite(rest) and rest < self._SAFE):
            return None
        return self.take(lo, hi)


def apply_update(held: Optional[HeldDecodes], update, lo: int, hi: int) -> None:
    """``update(lo, hi)`` (None: no update) after the exchange of [lo, hi) completed.
    Held payloads of the range (``held``, the exchange's) go to the update to decode,
    or are decoded into the gradient first when there is no update; an update marked
    ``takes_held`` (the divergence guard's check) handles them itself."""
    if not held:
        if update is not None:
            update(lo, hi)
    elif update is None:
        held.materialize(lo, hi)
    elif getattr(update, "takes_held", False):
        update(lo, hi)
    else:
        held.run(update, lo, hi)
