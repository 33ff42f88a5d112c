"""The optimizers' per-step arithmetic as kernels: a fused compiled pass
(``dtnn._kernels._optim``, C in csrc/optim.c) and its numpy twin here, the test
oracle and the fallback when the extension is missing (or ``DTNN_KERNELS=numpy``).

Both take the scalars as Python floats already combined the way the optimizers need
them (``neg_lr = -lr``, ``one_minus_damp = 1 - dampening``, ...), and round each to
float32 the same way (numpy rounds a Python float multiplied into a float32 array to
float32; C casts the double), then apply the same float32 operations in the same
order: results are bit-identical.  The twins write into ``work`` (two scratch
vectors like ``p``; allocated per call when None) so a step allocates nothing.
"""
from __future__ import annotations

from typing import Optional, Sequence, Tuple

import numpy as np

from dtnn._kernels import resolve


def _work(p: np.ndarray, work: Optional[Sequence[np.ndarray]]) -> Tuple[np.ndarray, np.ndarray]:
    if work is None:
        return np.empty_like(p), np.empty_like(p)
    return work[0], work[1]


def sgd_update(p, g, mask, buf, neg_lr: float, wd: float, mom: float,
               one_minus_damp: float, nesterov: bool, first: bool, work=None) -> None:
    """One SGD step in place (torch.optim.SGD's update, element for element)::

        d = (p * mask) * wd + g                    when wd != 0, else g
        buf = d  (first)  or  buf * mom + d * one_minus_damp   when mom != 0
        d = buf * mom + d  (nesterov)  or  buf
        p = p + d * neg_lr
    """
    s, dec = _work(p, work)
    d = g
    if wd != 0:
        np.multiply(p, mask, out=dec)
        dec *= wd
        dec += g
        d = dec
    if mom != 0:
        if first:
            np.copyto(buf, d)
        else:
            buf *= mom
            if one_minus_damp == 1.0:
                buf += d
            else:
                np.multiply(d, one_minus_damp, out=s)
                buf += s
        if nesterov:
            np.multiply(buf, mom, out=s)
            s += d
            d = s
        else:
            d = buf
    np.multiply(d, neg_lr, out=s)
    p += s


def adam_update(p, g, mask, m, v, decay: int, wd: float, w: float, one_minus_w: float,
                b2: float, one_minus_b2: float, neg_step: float, bc2_sqrt: float,
                eps: float, work=None) -> None:
    """One Adam step in place on p, m, v (torch.optim.Adam / AdamW)::

        decay 1 (L2):        g = (p * mask) * wd + g
        decay 2 (decoupled): p = p * wd where mask != 0      (wd = 1 - lr * weight_decay)
        m = m + (g - m) * w  if |w| < 0.5  else  g - (g - m) * one_minus_w   (w = 1 - beta1)
        v = v * b2 + (g * one_minus_b2) * g
        p = p + (m * neg_step) / (sqrt(v) / bc2_sqrt + eps)
    """
    if decay not in (0, 1, 2):
        raise ValueError(f"decay must be 0, 1 or 2, got {decay}")
    s1, s2 = _work(p, work)
    if decay == 2:
        np.multiply(p, wd, out=p, where=mask != 0)
    elif decay == 1:
        np.multiply(p, mask, out=s1)
        s1 *= wd
        s1 += g
        g = s1
    np.subtract(g, m, out=s2)
    if abs(w) < 0.5:
        s2 *= w
        m += s2
    else:
        s2 *= one_minus_w
        np.subtract(g, s2, out=m)
    v *= b2
    np.multiply(g, one_minus_b2, out=s2)
    s2 *= g
    v += s2
    np.sqrt(v, out=s2)
    s2 /= bc2_sqrt
    s2 += eps
    np.multiply(m, neg_step, out=s1)
    s1 /= s2
    p += s1


def adam_scalars(lr: float, betas: Tuple[float, float], eps: float, weight_decay: float,
                 decoupled: bool, t: int) -> dict:
    """The keyword scalars of ``adam_update`` for step ``t`` (1-based)."""
    b1, b2 = betas
    w = 1.0 - b1
    if weight_decay == 0:
        decay, wd = 0, 0.0
    elif decoupled:
        decay, wd = 2, 1.0 - lr * weight_decay
    else:
        decay, wd = 1, weight_decay
    return dict(decay=decay, wd=wd, w=w, one_minus_w=1.0 - w, b2=b2, one_minus_b2=1.0 - b2,
                neg_step=-(lr / (1.0 - b1 ** t)), bc2_sqrt=(1.0 - b2 ** t) ** 0.5, eps=eps)


def contiguous_f32(*vectors) -> bool:
    """True when every vector is a C-contiguous float32 numpy array: what the compiled
    update kernels take (a model's flat vectors are)."""
    return all(isinstance(a, np.ndarray) and a.dtype == np.float32 and a.flags.c_contiguous
               for a in vectors)


def kernels(*vectors: np.ndarray):
    """``(sgd_update, adam_update, implementation)`` for these vectors: the compiled
    pair when every one is a C-contiguous float32 array (what a model's flat vectors
    are), the twins otherwise (float64 parameters, a float64 mask...) or when the
    extension is missing or DTNN_KERNELS=numpy."""
    import sys
    twin = sys.modules[__name__]
    sgd = resolve("sgd_update", "dtnn._kernels._optim", twin)
    adam = resolve("adam_update", "dtnn._kernels._optim", twin)
    if sgd is sgd_update or not contiguous_f32(*vectors):
        return sgd_update, adam_update, "numpy"
    return sgd, adam, "compiled"
