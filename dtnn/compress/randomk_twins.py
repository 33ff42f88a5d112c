"""numpy twin of random-k's fused encode (compiled: ``dtnn._kernels._summable``, C in
csrc/randomk.c).  It defines the contract."""
from __future__ import annotations

import numpy as np


def rk_encode(res, flat, starts, lens, idx, payload, flat_idx, move: bool) -> None:
    """The unit is the concatenation of ``flat[s:s + n]`` over ``zip(starts, lens)``:
    ``res += unit`` (``res`` indexed by the unit), ``unit = 0`` if ``move``; then for the
    sorted unit indices ``idx``: ``payload = res[idx]``, ``res[idx] = 0`` and
    ``flat_idx`` = their indices in ``flat``."""
    starts = np.asarray(starts, np.int64)
    lens = np.asarray(lens, np.int64)
    if res.size != int(lens.sum()):
        raise ValueError(f"res has {res.size} elements, the ranges {int(lens.sum())}")
    if idx.size and (np.any(np.diff(idx) <= 0) or idx[0] < 0 or idx[-1] >= res.size):
        raise ValueError("rk_encode: idx must be increasing unit indices")
    u = 0
    for s, n in zip(starts.tolist(), lens.tolist()):
        x = flat[s:s + n]
        np.add(res[u:u + n], x, out=res[u:u + n])
        if move:
            x.fill(0.0)
        u += n
    payload[...] = res[idx]
    res[idx] = 0.0
    offs = np.cumsum(lens) - lens
    j = np.searchsorted(offs, idx, side="right") - 1
    flat_idx[...] = starts[j] + (idx - offs[j])
