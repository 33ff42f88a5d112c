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
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import numpy as np

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

    def compress(self, x, unit, residual=None):
        mats, raw = self._layout(unit)
        if residual is not None:
            residual += x
            m = residual
        else:
            m = x
        n1 = self._sizes(unit)[0]
        p1 = np.empty(n1, np.float32)
        j = 0
        for off, rows, cols, r in mats:
            mat = m[off:off + rows * cols].reshape(rows, cols)
            np.matmul(mat, self._q(unit, off, cols, r), out=p1[j:j + rows * r].reshape(rows, r))
            j += rows * r
        for off, size in raw:
            p1[j:j + size] = m[off:off + size]
            if residual is not None:
                residual[off:off + size] = 0.0  # sent exactly
            j += size
        unit.scratch["psgd"] = {"m": m, "ef": residual is not None, "round": 1}
        return p1

    def next_round(self, summed, unit) -> Optional[np.ndarray]:
        st = unit.scratch["psgd"]
        mats, raw = self._layout(unit)
        if st["round"] != 1 or not mats:
            return None
        m = st["m"]
        q2 = np.empty(self._sizes(unit)[1], np.float32)
        ps: List[np.ndarray] = []
        j = k = 0
        for off, rows, cols, r in mats:
            p = orthonormalize(summed[j:j + rows * r].reshape(rows, r).copy())
            ps.append(p)
            mat = m[off:off + rows * cols].reshape(rows, cols)
            q = q2[k:k + cols * r].reshape(cols, r)
            np.matmul(mat.T, p, out=q)
            if st["ef"]:
                mat -= p @ q.T  # residual = M - P Q_local^T
            j += rows * r
            k += cols * r
        st.update(round=2, ps=ps, raw=summed[j:].copy())
        return q2

    def decompress_add(self, payload, out, alpha, unit):
        st = unit.scratch["psgd"]
        mats, raw = self._layout(unit)
        if st["round"] == 1:  # nothing compressed in this unit: payload = raw sum
            rawsum = payload[sum(rows * r for _, rows, _, r in mats):]
            ps = None
        else:
            rawsum, ps = st["raw"], st["ps"]
        k = 0
        a = np.float32(alpha)
        for i, (off, rows, cols, r) in enumerate(mats):
            q = payload[k:k + cols * r].reshape(cols, r)
            out[off:off + rows * cols] += (a * (ps[i] @ q.T)).ravel()
            self.qs[f"u{unit.index}_{off}"] = q.copy()  # warm start (same on all ranks)
            k += cols * r
        j = 0
        for off, size in raw:
            out[off:off + size] += a * rawsum[j:j + size]
            j += size
        unit.scratch.pop("psgd", None)

    def state_dict(self) -> Dict[str, Any]:
        return {"q": {k: v.copy() for k, v in sorted(self.qs.items())}} if self.qs else {}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.qs = {k: np.array(v, np.float32) for k, v in state.get("q", {}).items()}

    def describe(self):
        return f"powersgd(rank={self.rank_r}, start_step={self.warmup_steps})"
