"""Gradient-norm clipping on the flat gradient vector (``torch.nn.utils.clip_grad_norm_``).

Under MPI, call it on the gradients *after* the exchange: they are then the same
average on every rank, so every rank computes the same global norm and applies the
same scale, and the replicas stay identical without any extra communication.
"""
from __future__ import annotations

import numpy as np


def grad_norm(grads: np.ndarray) -> float:
    """L2 norm of a flat float32 vector (accumulated in float64 blocks)."""
    g = np.asarray(grads).reshape(-1)
    block = 1 << 20
    total = 0.0
    for start in range(0, g.size, block):
        part = g[start:start + block]
        total += float(np.dot(part, part))   # float32 dot over <= 1M elements
    return float(np.sqrt(total))


def clip_grad_norm(grads: np.ndarray, max_norm: float) -> float:
    """Scale ``grads`` in place so that its L2 norm is at most ``max_norm``; return the
    norm before clipping (``inf``/``nan`` are returned and the gradients left alone)."""
    norm = grad_norm(grads)
    if max_norm > 0 and np.isfinite(norm) and norm > max_norm:
        grads *= np.float32(max_norm / (norm + 1e-6))
    return norm
