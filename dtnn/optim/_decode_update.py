"""The quantised ring's final decode fused into the SGD update (``dist.fuse_update``):
``decode_sgd_pieces`` compiled (``dtnn._kernels._fused``, C in csrc/decode_update.c)
or its numpy twin here, which is that definition: decode the payload into a scratch
vector (``kernels.decode_pieces``), then ``sgd_update`` on it.  Both are elementwise
with fixed float32 operations, so twin and compiled kernel give the same bits as the
unfused decode into the flat gradient followed by the optimizer's step."""
from __future__ import annotations

import numpy as np

from dtnn._kernels import resolve
from dtnn.compress import kernels as K
from dtnn.optim._update import contiguous_f32, sgd_update


def decode_sgd_pieces(kind: str, payload: np.ndarray, n: int, chunk: int, alpha: float,
                      levels: float, bounds: np.ndarray, offs: np.ndarray, p: np.ndarray,
                      mask: np.ndarray, buf, neg_lr: float, wd: float, mom: float,
                      one_minus_damp: float, nesterov: bool, first: bool) -> None:
    """Decode the ``kind`` payload of n elements (scales + codes, ``decode_pieces``'s
    format) times ``alpha``: piece k, elements [bounds[k], bounds[k+1]), is the gradient
    of p[offs[k]:...]; apply one SGD step (``sgd_update``'s scalars) to those ranges of
    p, mask and buf (buf used only when mom != 0)."""
    g = np.empty(n, np.float32)
    K.decode_pieces(kind, payload, n, chunk, alpha, levels, [(0, n, g)])
    for k in range(len(offs)):
        s, e, o = int(bounds[k]), int(bounds[k + 1]), int(offs[k])
        if e > s:
            sl = slice(o, o + e - s)
            sgd_update(p[sl], g[s:e], mask[sl], None if mom == 0 else buf[sl], neg_lr, wd,
                       mom, one_minus_damp, nesterov, first)


def kernel(*vectors: np.ndarray):
    """The compiled kernel when every vector is C-contiguous float32 and the extension
    is there (and DTNN_KERNELS is not numpy), else the twin."""
    import sys
    fn = resolve("decode_sgd_pieces", "dtnn._kernels._fused", sys.modules[__name__])
    return fn if contiguous_f32(*vectors) else decode_sgd_pieces
