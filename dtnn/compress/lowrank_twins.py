"""numpy twins of PowerSGD's batched passes (compiled: ``dtnn._kernels._summable``, C in
csrc/lowrank.c).  They define the contract.

A unit holds n matrices; ``shape`` is an int64 array of (rows, cols, rank) per matrix,
matrix i is ``M_i = vec[off[i]:off[i] + rows * cols].reshape(rows, cols)``.  P and Q
of all matrices are concatenated in matrix order, ``P_i`` (rows, rank) and ``Q_i``
(cols, rank) row-major: the layout of PowerSGD's two payloads.
"""
from __future__ import annotations

from typing import Iterator, Tuple

import numpy as np


def _blocks(shape) -> Iterator[Tuple[int, int, int, int, int, int]]:
    """(i, rows, cols, rank, P offset, Q offset) per matrix."""
    po = qo = 0
    for i, (rows, cols, r) in enumerate(np.asarray(shape, np.int64).reshape(-1, 3).tolist()):
        yield i, rows, cols, r, po, qo
        po += rows * r
        qo += cols * r


def _mat(vec: np.ndarray, off: int, rows: int, cols: int) -> np.ndarray:
    return vec[off:off + rows * cols].reshape(rows, cols)


def lr_encode(m, m_off, g, g_off, shape, q, p) -> None:
    """``M_i += G_i`` (unless ``g`` is None), then ``P_i = M_i Q_i``."""
    for i, rows, cols, r, po, qo in _blocks(shape):
        mat = _mat(m, int(m_off[i]), rows, cols)
        if g is not None:
            mat += _mat(g, int(g_off[i]), rows, cols)
        np.matmul(mat, q[qo:qo + cols * r].reshape(cols, r),
                  out=p[po:po + rows * r].reshape(rows, r))


def lr_orthonormalize(p, shape, eps: float = 1e-8) -> None:
    """Modified Gram-Schmidt on the columns of every ``P_i``, in place (a column whose
    norm is below ``eps`` is divided by ``eps``)."""
    for _, rows, _, r, po, _ in _blocks(shape):
        pm = p[po:po + rows * r].reshape(rows, r)
        for k in range(r):
            col = pm[:, k]
            for j in range(k):
                col -= np.float32(np.dot(pm[:, j], col)) * pm[:, j]
            col /= np.float32(max(float(np.linalg.norm(col)), eps))


def lr_round2(m, m_off, shape, p, q, ef: bool) -> None:
    """``Q_i = M_i^T P_i`` into ``q``; then, if ``ef``, ``M_i -= P_i Q_i^T``."""
    for i, rows, cols, r, po, qo in _blocks(shape):
        mat = _mat(m, int(m_off[i]), rows, cols)
        pm = p[po:po + rows * r].reshape(rows, r)
        qm = q[qo:qo + cols * r].reshape(cols, r)
        np.matmul(mat.T, pm, out=qm)
        if ef:
            mat -= pm @ qm.T


def lr_decode(out, out_off, shape, p, q, alpha: float) -> None:
    """``OUT_i = alpha * P_i Q_i^T`` (written, not added)."""
    a = np.float32(alpha)
    for i, rows, cols, r, po, qo in _blocks(shape):
        o = _mat(out, int(out_off[i]), rows, cols)
        np.matmul(p[po:po + rows * r].reshape(rows, r), q[qo:qo + cols * r].reshape(cols, r).T,
                  out=o)
        o *= a
