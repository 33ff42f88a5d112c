"""Pure-numpy twins of the compiled kernels: the test oracle and the fallback.

Contract (shared with the Cython versions, which must give the same results):

im2col(x, R, S, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, out=None) -> col
    x: float32 C-contiguous (N, C, H, W).  col: float32 (C*R*S, N*Ho*Wo) with
    row = (c*R + r)*S + s and column = (n*Ho + ho)*Wo + wo; out-of-image taps are 0.
    If ``out`` is given (right shape, float32, C-contiguous) it is filled and returned.

col2im(col, N, C, H, W, R, S, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, out=None) -> x
    The adjoint of im2col: scatter-adds every column entry back to its pixel.
    Returns float32 (N, C, H, W); ``out`` (if given) is overwritten, not accumulated.

maxpool_forward(x, R, S, stride_h, stride_w, pad_h, pad_w) -> (y, argmax)
    y: float32 (N, C, Ho, Wo); argmax: int32 (N, C, Ho, Wo), the flat index h*W + w
    of the winning input pixel inside its (H, W) map.  Padding never wins (-inf);
    ties go to the first tap in row-major window order.

maxpool_backward(dy, argmax, H, W, out=None) -> dx
    float32 (N, C, H, W): dy routed to the argmax pixels (accumulated where windows
    overlap).
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np


def out_size(n: int, k: int, stride: int, pad: int, dil: int) -> int:
    return (n + 2 * pad - dil * (k - 1) - 1) // stride + 1


def _tap(r: int, s: int, Ho: int, Wo: int, sh: int, sw: int, dh: int, dw: int):
    """Slices of the padded input that tap (r, s) reads for every output pixel."""
    return (slice(r * dh, r * dh + sh * (Ho - 1) + 1, sh),
            slice(s * dw, s * dw + sw * (Wo - 1) + 1, sw))


def im2col(x, R, S, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, out=None):
    N, C, H, W = x.shape
    Ho = out_size(H, R, stride_h, pad_h, dil_h)
    Wo = out_size(W, S, stride_w, pad_w, dil_w)
    xp = np.pad(x, ((0, 0), (0, 0), (pad_h, pad_h), (pad_w, pad_w)))
    col = out if out is not None else np.empty((C * R * S, N * Ho * Wo), np.float32)
    view = col.reshape(C, R, S, N, Ho, Wo)
    for r in range(R):
        for s in range(S):
            hs, ws = _tap(r, s, Ho, Wo, stride_h, stride_w, dil_h, dil_w)
            view[:, r, s] = xp[:, :, hs, ws].transpose(1, 0, 2, 3)
    return col


def col2im(col, N, C, H, W, R, S, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, out=None):
    Ho = out_size(H, R, stride_h, pad_h, dil_h)
    Wo = out_size(W, S, stride_w, pad_w, dil_w)
    xp = np.zeros((N, C, H + 2 * pad_h, W + 2 * pad_w), np.float32)
    view = col.reshape(C, R, S, N, Ho, Wo)
    for r in range(R):
        for s in range(S):
            hs, ws = _tap(r, s, Ho, Wo, stride_h, stride_w, dil_h, dil_w)
            xp[:, :, hs, ws] += view[:, r, s].transpose(1, 0, 2, 3)
    res = out if out is not None else np.empty((N, C, H, W), np.float32)
    res[...] = xp[:, :, pad_h:pad_h + H, pad_w:pad_w + W]
    return res


def maxpool_forward(x, R, S, stride_h, stride_w, pad_h, pad_w) -> Tuple[np.ndarray, np.ndarray]:
    N, C, H, W = x.shape
    Ho = out_size(H, R, stride_h, pad_h, 1)
    Wo = out_size(W, S, stride_w, pad_w, 1)
    xp = np.pad(x, ((0, 0), (0, 0), (pad_h, pad_h), (pad_w, pad_w)), constant_values=-np.inf)
    y = np.full((N, C, Ho, Wo), -np.inf, np.float32)
    arg = np.zeros((N, C, Ho, Wo), np.int32)
    oh = np.arange(Ho)[:, None] * stride_h - pad_h
    ow = np.arange(Wo)[None, :] * stride_w - pad_w
    for r in range(R):
        for s in range(S):
            hs, ws = _tap(r, s, Ho, Wo, stride_h, stride_w, 1, 1)
            cand = xp[:, :, hs, ws]
            better = cand > y  # strict: ties keep the earlier tap
            y = np.where(better, cand, y)
            arg = np.where(better, ((oh + r) * W + (ow + s)).astype(np.int32), arg)
    return y.astype(np.float32), arg


def maxpool_backward(dy, argmax, H, W, out: Optional[np.ndarray] = None):
    N, C = dy.shape[:2]
    dx = out if out is not None else np.empty((N, C, H, W), np.float32)
    dx[...] = 0
    flat = dx.reshape(N * C, H * W)
    rows = np.repeat(np.arange(N * C), dy[0, 0].size)
    np.add.at(flat, (rows, argmax.reshape(-1)), dy.reshape(-1))
    return dx


# --- BatchNorm (training) and PReLU over (N, C, L): twins of csrc/bnact.c ----------------
def bn_stats(x):
    """(mean, biased variance) per channel of x (N, C, L), float64 sums."""
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=(0, 2))
    var = ((x64 - mean[None, :, None]) ** 2).mean(axis=(0, 2))
    return mean.astype(np.float32), var.astype(np.float32)


def bn_apply(x, scale, shift):
    """y = x * scale[c] + shift[c]."""
    y = x * np.asarray(scale, np.float32)[None, :, None]
    y += np.asarray(shift, np.float32)[None, :, None]
    return y.astype(np.float32, copy=False)


def bn_backward(dy, x, mean, inv_std, gamma, training, need_dx):
    """(dx or None, dgamma, dbeta) of y = gamma * (x - mean) * inv_std + beta; in
    training mean and inv_std are the batch's, so dx has their terms too."""
    dy64, x64 = dy.astype(np.float64), x.astype(np.float64)
    inv = np.asarray(inv_std, np.float64)[None, :, None]
    xhat = (x64 - np.asarray(mean, np.float64)[None, :, None]) * inv
    dbeta = dy64.sum(axis=(0, 2))
    dgamma = (dy64 * xhat).sum(axis=(0, 2))
    dx = None
    if need_dx:
        a = np.asarray(gamma, np.float64)[None, :, None] * inv
        dx = a * dy64
        if training:
            n = x.shape[0] * x.shape[2]
            dx -= a * (dbeta[None, :, None] + xhat * dgamma[None, :, None]) / n
        dx = dx.astype(np.float32)
    return dx, dgamma.astype(np.float32), dbeta.astype(np.float32)


def bn_apply_relu(x, scale, shift):
    """relu(x * scale[c] + shift[c]): BatchNorm's affine map and ReLU fused."""
    return relu_forward(bn_apply(x, scale, shift))


def bn_relu_backward(dy, y, x, mean, inv_std, gamma, training, need_dx):
    """bn_backward of relu_backward(dy, y): the backward of BatchNorm + ReLU, y the
    ReLU's output."""
    return bn_backward(relu_backward(dy, y), x, mean, inv_std, gamma, training, need_dx)


def bn_apply_relu_pool2(x, scale, shift):
    """BatchNorm's affine map, ReLU and 2x2 / stride-2 max pooling of x (N, C, H, W):
    (pooled y, argmax in the H*W plane)."""
    N, C, H, W = x.shape
    r = bn_apply_relu(x.reshape(N, C, H * W), scale, shift).reshape(x.shape)
    return maxpool_forward(r, 2, 2, 2, 2, 0, 0)


def bn_relu_pool2_backward(dy, y, argmax, x, mean, inv_std, gamma, need_dx):
    """The training backward of bn_apply_relu_pool2: the pool's gradient routed to the
    argmax positions, gated by the ReLU (whose output there is the pooled y), then
    BatchNorm's backward."""
    N, C, H, W = x.shape
    g = maxpool_backward(dy, argmax, H, W).reshape(N, C, H * W)
    gate = maxpool_backward(y, argmax, H, W).reshape(N, C, H * W)
    dx, dgamma, dbeta = bn_relu_backward(g, gate, x.reshape(N, C, H * W), mean, inv_std,
                                         gamma, True, need_dx)
    return (None if dx is None else dx.reshape(x.shape)), dgamma, dbeta


def prelu_forward(x, alpha):
    """y = x if x > 0 else alpha[c] * x."""
    a = np.asarray(alpha, np.float32)[None, :, None]
    return np.where(x > 0, x, a * x).astype(np.float32, copy=False)


def prelu_backward(dy, x, alpha, need_dx):
    """(dx or None, dalpha): dalpha[c] = sum over x < 0 of dy * x."""
    dalpha = (np.minimum(x, 0).astype(np.float64) * dy).sum(axis=(0, 2)).astype(np.float32)
    dx = None
    if need_dx:
        a = np.asarray(alpha, np.float32)[None, :, None]
        dx = np.where(x > 0, dy, a * dy).astype(np.float32, copy=False)
    return dx, dalpha


def relu_forward(x):
    """max(x, 0), NaN kept."""
    return np.maximum(x, np.float32(0), dtype=np.float32)


def relu_backward(dy, y):
    """dy where y > 0, else 0 (y: the forward's output)."""
    return np.multiply(dy, y > 0, dtype=np.float32)


def channel_sum(x, out=None):
    """Sum of a float32 (N, C, L) array over axes 0 and 2 (a convolution's bias
    gradient); rows summed in float32, rows added in float64, like the kernel."""
    x = np.asarray(x, dtype=np.float32)
    rows = x.sum(axis=2, dtype=np.float32)
    s = rows.sum(axis=0, dtype=np.float64).astype(np.float32)
    if out is None:
        return s
    out[...] = s
    return out
