"""Numpy twins of the fused ("implicit im2col") convolution kernels.

The compiled versions live in ``dtnn._kernels._im2col`` (C in csrc/im2col.c, contract in
csrc/im2col_fused.h): they run the convolution GEMMs straight from (a zero-padded copy
of) blocks of images, with no column matrix, on x86-64 CPUs with AVX-512F.  These twins
give the same results the plain way (unfold with ``dtnn._kernels.twins.im2col`` / fold
with ``col2im``, one float32 matmul per group); they are the tests' oracle and the
reference for the contract:

fused_forward(x, w, bias, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups,
              out=None, workspace=None)
    y (N, K, Ho, Wo) = conv(x, w) + bias (bias may be None); any geometry.
fused_backward_data(dy, w, H, W, pad_h, pad_w, dil_h, dil_w, groups, out=None,
                    workspace=None)
    dx (N, C, H, W) of a stride-1 convolution with pad <= dil*(kernel-1).
fused_backward_weights(dy, x, R, S, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w,
                       groups, out=None, workspace=None, db=None)
    dw (K, C/groups, R, S) of any convolution (``out`` is overwritten); where
    ``fused_pointwise`` holds, ``db`` (K,) float32 is overwritten with the bias gradient.
fused_pointwise(R, S, stride_h, stride_w, pad_h, pad_w, Ho, Wo)
    whether the compiled backward-weights runs its pointwise kernel (and takes ``db``).

``workspace`` (a callable returning scratch) and ``isa`` (the compiled kernels' path)
are accepted and ignored here.

On blocks of >= 6 small images where >= 15 % of the products read padding (3x3
convolutions on 7x7 and smaller images; ``DTNN_FUSED_LIVE_MIN`` sets the percentage),
the compiled forward and backward-weights run live-tap blocks (csrc/im2col_fused_live.c:
images innermost, one output position of 6 images per micro-tile, taps that read only
padding skipped).  Same functions, so these twins are their reference too; the sums run
tap-major there, so the results differ from the channel-major blocks' by rounding.
"""
from __future__ import annotations

import numpy as np

from dtnn._kernels import twins


def _groups(C: int, K: int, groups: int) -> None:
    if groups < 1 or C % groups or K % groups:
        raise ValueError(f"groups={groups} must divide C={C} and K={K}")


def _result(res: np.ndarray, out):
    if out is None:
        return res
    out[...] = res
    return out


def fused_forward(x, w, bias, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups,
                  out=None, workspace=None, isa=None):
    x = np.ascontiguousarray(x, np.float32)
    w = np.ascontiguousarray(w, np.float32)
    N, C, H, W = x.shape
    K, Cg, R, S = w.shape
    _groups(C, K, groups)
    Ho = twins.out_size(H, R, stride_h, pad_h, dil_h)
    Wo = twins.out_size(W, S, stride_w, pad_w, dil_w)
    G, Kg = groups, K // groups
    col = twins.im2col(x, R, S, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w)
    y = np.matmul(w.reshape(G, Kg, Cg * R * S), col.reshape(G, Cg * R * S, N * Ho * Wo))
    y = y.reshape(K, N, Ho, Wo).transpose(1, 0, 2, 3)
    if bias is not None:
        y = y + np.asarray(bias, np.float32).reshape(1, K, 1, 1)
    return _result(np.ascontiguousarray(y, np.float32), out)


def fused_backward_data(dy, w, H, W, pad_h, pad_w, dil_h, dil_w, groups, out=None,
                        workspace=None, isa=None):
    dy = np.ascontiguousarray(dy, np.float32)
    w = np.ascontiguousarray(w, np.float32)
    N, K, Ho, Wo = dy.shape
    _, Cg, R, S = w.shape
    G, Kg, C = groups, K // groups, Cg * groups
    _groups(C, K, groups)
    if pad_h > dil_h * (R - 1) or pad_w > dil_w * (S - 1):
        raise ValueError("fused_backward_data needs pad <= dil*(kernel-1)")
    if (twins.out_size(H, R, 1, pad_h, dil_h), twins.out_size(W, S, 1, pad_w, dil_w)) != (Ho, Wo):
        raise ValueError(f"an input of {H}x{W} does not give dy's {Ho}x{Wo}")
    dym = dy.transpose(1, 0, 2, 3).reshape(G, Kg, N * Ho * Wo)
    dcol = np.matmul(w.reshape(G, Kg, Cg * R * S).transpose(0, 2, 1), dym)
    dx = twins.col2im(np.ascontiguousarray(dcol.reshape(C * R * S, N * Ho * Wo)),
                      N, C, H, W, R, S, 1, 1, pad_h, pad_w, dil_h, dil_w)
    return _result(dx, out)


def fused_pointwise(R, S, stride_h, stride_w, pad_h, pad_w, Ho, Wo) -> bool:
    """1x1, stride 1, no padding, and images of at least 256 pixels (smaller ones run
    the tiled kernel, faster there: csrc/im2col_fused.c PW_MIN_P)."""
    return ((R, S, stride_h, stride_w, pad_h, pad_w) == (1, 1, 1, 1, 0, 0)
            and Ho * Wo >= 256)


def fused_backward_weights(dy, x, R, S, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w,
                           groups, out=None, workspace=None, isa=None, db=None):
    if db is not None:
        if not fused_pointwise(R, S, stride_h, stride_w, pad_h, pad_w, *dy.shape[2:]):
            raise ValueError("db is summed only by the pointwise kernel (1x1, stride 1, "
                             "no padding, see fused_pointwise)")
        if db.dtype != np.float32 or db.shape != (dy.shape[1],):
            raise ValueError(f"db must be a float32 array of shape ({dy.shape[1]},)")
        db[...] = np.sum(np.asarray(dy, np.float32), axis=(0, 2, 3))
    dy = np.ascontiguousarray(dy, np.float32)
    x = np.ascontiguousarray(x, np.float32)
    N, C, H, W = x.shape
    K = dy.shape[1]
    G, Kg, Cg = groups, K // groups, C // groups
    _groups(C, K, groups)
    col = twins.im2col(x, R, S, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w)
    P = dy.shape[2] * dy.shape[3]
    dym = dy.reshape(N, K, P).transpose(1, 0, 2).reshape(G, Kg, N * P)
    dw = np.matmul(dym, col.reshape(G, Cg * R * S, N * P).transpose(0, 2, 1))
    return _result(np.ascontiguousarray(dw.reshape(K, Cg, R, S), np.float32), out)
