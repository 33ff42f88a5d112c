"""PowerSGD (Vogels et al. 2019): rank-r approximation of every weight matrix by one
step of power iteration, warm-started from the previous step's Q.

Per unit and step, with M the (error-corrected) gradient of each tensor reshaped to
(shape[0], rest):

    round 1   P = M Q            -> allreduce (sum) together with the tensors that are
                                    not compressed (vectors, or matrices too small for
                                    rank r to save bytes), which go raw
    local     P <- orthonormal columns (Gram-Schmidt, identical on every rank)
              Q = M^T P          ; residual = M - P Q^T (error feedback)
    round 2   Q                  -> allreduce (sum)
    decode    M_avg ~= P Q^T / N ; Q (summed) is kept as next step's warm start

Both payloads are float32 and summable.  Q starts as a seeded standard normal
matrix (the same on every rank).  ``start_step``: uncompressed steps first.

The passes over the gradient run batched over the unit's matrices in C
(``dtnn.compress.summable``: csrc/lowrank.c, numpy twins in ``lowrank_twins``): the
residual add fused into P = M Q, Q = M^T P and the residual update in one call, the
decode written once (no zero-fill, no full-size temporaries); units split by small
tensors are read from and decoded into the flat gradient's ranges (``compress_ranges``)
instead of a staging copy.  Same maths as the numpy form; the sums run in another
order, so the results agree to float32 rounding (tests/compress/test_lowrank.py).
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from dtnn.compress import summable as lr
from dtnn.compress.base import Compressor, Unit, register, stream_key
from dtnn.errors import ConfigError


def orthonormalize(p: np.ndarray, eps: float = 1e-8) -> np.ndarray:
    """Modified Gram-Schmidt on the columns of ``p``, in place (float32)."""
    for i in range(p.shape[1]):
        col = p[:, i]
        for j in range(i):
            col -= np.dot(p[:, j], col) * p[:, j]
        norm = float(np.linalg.norm(col))
        col /= max(norm, eps)
    return p


@register("powersgd")
class PowerSGD(Compressor):
    biased = True
    summable = True

    def __init__(self, rank: int = 2, start_step: int = 0):
        super().__init__()
        if int(rank) < 1:
            raise ConfigError(f"powersgd: rank must be >= 1, got {rank}")
        self.rank_r = int(rank)
        self.warmup_steps = int(start_step)
        self.qs: Dict[str, np.ndarray] = {}
        #: per unit index: its Q blocks concatenated (``qs`` holds views of them)
        self._qbuf: Dict[int, np.ndarray] = {}

    def _layout(self, unit: Unit):
        """([(offset, rows, cols, r)] matrices, [(offset, size)] raw tensors)."""
        mats, raw = [], []
        for off, shape in unit.tensors:
            size = int(np.prod(shape, dtype=np.int64))
            if len(shape) >= 2:
                rows, cols = int(shape[0]), size // int(shape[0])
                r = min(self.rank_r, rows, cols)
                if r * (rows + cols) < rows * cols:
                    mats.append((off, rows, cols, r))
                    continue
            raw.append((off, size))
        return mats, raw

    def payload_size(self, unit):
        return sum(self._sizes(unit))

    def _sizes(self, unit):
        """(round-1 payload elements, round-2 payload elements)."""
        mats, raw = self._layout(unit)
        return (sum(rows * r for _, rows, _, r in mats) + sum(s for _, s in raw),
                sum(cols * r for _, _, cols, r in mats))

    def _q(self, unit: Unit, off: int, cols: int, r: int) -> np.ndarray:
        name = f"u{unit.index}_{off}"
        q = self.qs.get(name)
        if q is None or q.shape != (cols, r):
            gen = np.random.default_rng(stream_key(self.seed, 0x707367, unit.index, off))
            q = self.qs[name] = gen.standard_normal((cols, r)).astype(np.float32)
        return q

    # --- the unit's layout, cached: matrices go to the batched kernels in one call ---
    def _lay(self, unit: Unit) -> "_Layout":
        lay = unit.scratch.get("psgd_layout")
        if lay is None or lay.tensors is not unit.tensors:
            lay = unit.scratch["psgd_layout"] = _Layout(unit.tensors, *self._layout(unit))
        return lay

    def _qcat(self, unit: Unit, lay: "_Layout") -> np.ndarray:
        """The unit's Q blocks concatenated (the layout of round 2's payload); ``qs``
        holds views of it, so the warm start is one copy of the summed payload."""
        cat = self._qbuf.get(unit.index)
        if cat is not None and cat.size == lay.nq:
            return cat
        cat = np.empty(lay.nq, np.float32)
        k = 0
        for off, rows, cols, r in lay.mats:
            cat[k:k + cols * r] = self._q(unit, off, cols, r).ravel()
            self.qs[f"u{unit.index}_{off}"] = cat[k:k + cols * r].reshape(cols, r)
            k += cols * r
        self._qbuf[unit.index] = cat
        return cat

    def compress(self, x, unit, residual=None):
        lay = self._lay(unit)
        return self._encode(x, lay.m_off, lay.raw, unit, lay, residual)

    def compress_ranges(self, flat, ranges, unit, residual=None):
        """``compress`` of the concatenated ``flat[a:b]`` ranges (the unit), read where
        they are instead of from a staging copy: every tensor lies inside one range."""
        lay = self._lay(unit)
        f_off, f_raw = lay.flat(ranges)
        return self._encode(flat, f_off, f_raw, unit, lay, residual)

    def _encode(self, x, x_off, x_raw, unit, lay, residual):
        p1 = np.empty(lay.np + lay.nraw, np.float32)
        qcat = self._qcat(unit, lay)
        if residual is not None:   # M = residual + x, kept in the residual
            lr.lr_encode(residual, lay.m_off, x, x_off, lay.shape, qcat, p1[:lay.np])
            m, m_off = residual, lay.m_off
        else:
            lr.lr_encode(x, x_off, None, None, lay.shape, qcat, p1[:lay.np])
            m, m_off = x, x_off
        j = lay.np
        for (off, size), (xo, _) in zip(lay.raw, x_raw):
            if residual is not None:   # sent exactly: the residual keeps nothing
                np.add(residual[off:off + size], x[xo:xo + size], out=p1[j:j + size])
                residual[off:off + size] = 0.0
            else:
                p1[j:j + size] = x[xo:xo + size]
            j += size
        unit.scratch["psgd"] = {"m": m, "m_off": m_off, "ef": residual is not None,
                                "round": 1}
        return p1

    def next_round(self, summed, unit) -> Optional[np.ndarray]:
        st = unit.scratch["psgd"]
        lay = self._lay(unit)
        if st["round"] != 1 or not lay.mats:
            return None
        p = summed[:lay.np].copy()
        lr.lr_orthonormalize(p, lay.shape)          # identical on every rank
        q2 = np.empty(lay.nq, np.float32)
        # Q = M^T P, then (error feedback) residual = M - P Q_local^T
        lr.lr_round2(st["m"], st["m_off"], lay.shape, p, q2, st["ef"])
        st.update(round=2, p=p, raw=summed[lay.np:].copy())
        return q2

    def _decode(self, payload, out, o_off, o_raw, alpha, unit) -> None:
        st = unit.scratch.pop("psgd")
        lay = self._lay(unit)
        a = np.float32(alpha)
        if st["round"] == 1:   # nothing compressed in this unit: payload = raw sum
            rawsum = payload[lay.np:]
        else:
            rawsum = st["raw"]
            qcat = self._qcat(unit, lay)
            qcat[:] = payload  # warm start (the same on all ranks)
            lr.lr_decode(out, o_off, lay.shape, st["p"], qcat, a)
        j = 0
        for (_, size), (oo, _) in zip(lay.raw, o_raw):
            np.multiply(rawsum[j:j + size], a, out=out[oo:oo + size])
            j += size

    def decompress_set(self, payload, out, alpha, unit, **_):
        """``out = alpha * decoded``: every element of the unit is written."""
        lay = self._lay(unit)
        self._decode(payload, out, lay.m_off, lay.raw, alpha, unit)

    def decompress_set_ranges(self, payload, flat, ranges, alpha, unit, **_):
        """``decompress_set`` into the concatenated ``flat[a:b]`` ranges."""
        lay = self._lay(unit)
        f_off, f_raw = lay.flat(ranges)
        self._decode(payload, flat, f_off, f_raw, alpha, unit)

    def decompress_add(self, payload, out, alpha, unit):
        dec = np.empty(unit.size, np.float32)
        self.decompress_set(payload, dec, alpha, unit)
        out += dec

    def state_dict(self) -> Dict[str, Any]:
        return {"q": {k: v.copy() for k, v in sorted(self.qs.items())}} if self.qs else {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.qs = {k: np.array(v, np.float32) for k, v in state.get("q", {}).items()}
        self._qbuf = {}

    def describe(self):
        return f"powersgd(rank={self.rank_r}, start_step={self.warmup_steps})"


class _Layout:
    """A unit's matrices and raw tensors as the batched kernels take them."""

    def __init__(self, tensors, mats, raw):
        self.tensors, self.mats, self.raw = tensors, mats, raw
        self.shape = np.array([(rows, cols, r) for _, rows, cols, r in mats],
                              np.int64).reshape(-1, 3)
        self.m_off = np.array([off for off, _, _, _ in mats], np.int64)
        self.np = sum(rows * r for _, rows, _, r in mats)
        self.nq = sum(cols * r for _, _, cols, r in mats)
        self.nraw = sum(size for _, size in raw)
        self._flat: Tuple[Any, Any] = (None, None)

    def flat(self, ranges) -> Tuple[np.ndarray, List[Tuple[int, int]]]:
        """(matrix offsets, raw (offset, size)) inside the flat vector that the unit's
        ``ranges`` cover (each tensor lies inside one range)."""
        key = tuple(ranges)
        if self._flat[0] != key:
            starts = np.cumsum([0] + [b - a for a, b in ranges[:-1]])

            def where(off, size):
                i = int(np.searchsorted(starts, off, side="right")) - 1
                a, b = ranges[i]
                if off - starts[i] + size > b - a:
                    raise ValueError("powersgd: a tensor spans two ranges")
                return int(a + off - starts[i])
            m_off = np.array([where(off, rows * cols) for off, rows, cols, _ in self.mats],
                             np.int64)
            raw = [(where(off, size), size) for off, size in self.raw]
            self._flat = (key, (m_off, raw))
        return self._flat[1]
