"""Kernels of the convolution variants: numpy twins (test oracle and fallback) and the
dispatch to their compiled versions (``dtnn._kernels._winograd``, ``_direct``,
``_transpose``) through ``dtnn._kernels.resolve`` so ``dtnn info`` lists them.

Winograd layouts (alpha = m + 2, tile t = (j*th + i)*nb + n, T = nb*th*tw; csrc/winograd.h):
    winograd_filter(w (K,C,3,3), m, flip)                      -> U (alpha², K, C)
    winograd_input(x (nb,C,H,W), pad_h, pad_w, m, th, tw)      -> V (alpha², C, T)
    winograd_output(M (alpha²,K,T), bias, nb, Ho, Wo, m, th, tw) -> y (nb, K, Ho, Wo)
  backward-weights (the adjoints of winograd_output without bias and of winograd_filter):
    winograd_dy(dy (nb,K,Ho,Wo), m, th, tw)                    -> D (alpha², K, T)
    winograd_dfilter(dU (alpha²,K,C), m, accumulate)           -> dw (K, C, 3, 3)
Direct convolution (any stride/padding/dilation/groups):
    direct_forward(x, w, bias, sh, sw, ph, pw, dh, dw, G)           -> y
    direct_backward_data(dy, w, H, W, sh, sw, ph, pw, dh, dw, G)    -> dx
    direct_backward_weights(dy, x, R, S, sh, sw, ph, pw, dh, dw, G) -> dw
Layout change:
    swap01(src (A, B, P)) -> (B, A, P) contiguous
"""
from __future__ import annotations

import sys

import numpy as np

from dtnn._kernels import resolve

# --- Winograd matrices --------------------------------------------------------------
BT = {
    2: np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], np.float64),
    4: np.array([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                 [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
                np.float64),
}
G = {
    2: np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]], np.float64),
    4: np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                 [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], np.float64),
}
AT = {
    2: np.array([[1, 1, 1, 0], [0, 1, -1, -1]], np.float64),
    4: np.array([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                 [0, 1, -1, 8, -8, 1]], np.float64),
}


def winograd_filter(w, m, flip=False, out=None):
    """U = G w G^T for w (K, C, 3, 3) -> (alpha², K, C) float32.  flip: of the
    180°-rotated filters (backward-data multiplies by the transpose of each U[p])."""
    K, C = w.shape[:2]
    a = m + 2
    w = np.asarray(w, np.float32)
    if flip:
        w = w[:, :, ::-1, ::-1]
    # one GEMM: U[kc, (u, v)] = sum_{r,s} w[kc, (r, s)] G[u, r] G[v, s]  (Kronecker form);
    # computed transposed, (a², 9) @ (9, K*C), so the result is already (a², K, C)
    kron = np.einsum("ur,vs->rsuv", G[m], G[m]).reshape(9, a * a).astype(np.float32)
    wt = np.ascontiguousarray(w).reshape(K * C, 9).T
    U = out if out is not None else np.empty((a * a, K, C), np.float32)
    U[...] = np.matmul(kron.T, wt).reshape(a * a, K, C)
    return U


def winograd_input(x, pad_h, pad_w, m, th, tw, out=None):
    nb, C, H, W = x.shape
    a = m + 2
    Hp, Wp = (th - 1) * m + a, (tw - 1) * m + a
    if pad_h < 0 or pad_w < 0 or Hp < H + 2 * pad_h or Wp < W + 2 * pad_w:
        raise ValueError("the tiles must cover the padded image")
    xp = np.zeros((nb, C, Hp, Wp), np.float32)
    xp[:, :, pad_h:pad_h + H, pad_w:pad_w + W] = x
    # tiles d[n, c, i, j, u, v] = xp[n, c, i*m + u, j*m + v]
    s = xp.strides
    d = np.lib.stride_tricks.as_strided(
        xp, (nb, C, th, tw, a, a), (s[0], s[1], s[2] * m, s[3] * m, s[2], s[3]))
    bt = BT[m].astype(np.float32)
    v = np.matmul(np.matmul(bt, d), bt.T)  # (nb, C, th, tw, a, a)
    V = out if out is not None else np.empty((a * a, C, nb * th * tw), np.float32)
    # tile column (j*th + i)*nb + n
    V.reshape(a, a, C, tw, th, nb)[...] = v.transpose(4, 5, 1, 3, 2, 0)
    return V


def winograd_output(M, bias, nb, Ho, Wo, m, th, tw, out=None):
    a = m + 2
    K = M.shape[1]
    mt = M.reshape(a, a, K, tw, th, nb).transpose(5, 2, 4, 3, 0, 1)  # (nb,K,th,tw,a,a)
    at = AT[m].astype(np.float32)
    o = np.matmul(np.matmul(at, mt), at.T)  # (nb, K, th, tw, m, m)
    full = o.transpose(0, 1, 2, 4, 3, 5).reshape(nb, K, th * m, tw * m)
    y = out if out is not None else np.empty((nb, K, Ho, Wo), np.float32)
    y[...] = full[:, :, :Ho, :Wo]
    if bias is not None:
        y += bias.reshape(1, K, 1, 1)
    return y


def winograd_dy(dy, m, th, tw, out=None):
    """D = A dy_t A^T for every m x m tile of dy (nb, K, Ho, Wo), zero past Ho / Wo
    -> (alpha², K, nb*th*tw), the tile columns of ``winograd_input``.  The adjoint of
    ``winograd_output`` (without bias): <winograd_output(M), dy> = <M, D>."""
    nb, K, Ho, Wo = dy.shape
    a = m + 2
    if th * m < Ho or tw * m < Wo:
        raise ValueError("the tiles must cover the output")
    dp = np.zeros((nb, K, th * m, tw * m), np.float32)
    dp[:, :, :Ho, :Wo] = dy
    tiles = dp.reshape(nb, K, th, m, tw, m).transpose(0, 1, 2, 4, 3, 5)  # (nb,K,th,tw,m,m)
    at = AT[m].astype(np.float32)
    d = np.matmul(np.matmul(at.T, tiles), at)  # (nb, K, th, tw, a, a)
    D = out if out is not None else np.empty((a * a, K, nb * th * tw), np.float32)
    D.reshape(a, a, K, tw, th, nb)[...] = d.transpose(4, 5, 1, 3, 2, 0)
    return D


def winograd_dfilter(dU, m, accumulate=False, out=None):
    """dw = G^T dU G per (k, c): dU (alpha², K, C) -> (K, C, 3, 3) float32, the adjoint
    of ``winograd_filter`` (without flip).  ``accumulate``: add to ``out`` instead of
    overwriting it."""
    a2, K, C = dU.shape
    a = m + 2
    if a2 != a * a:
        raise ValueError(f"dU has {a2} positions, expected {a * a}")
    if accumulate and out is None:
        raise ValueError("accumulate needs out")
    kron = np.einsum("ur,vs->rsuv", G[m], G[m]).reshape(9, a * a).astype(np.float32)
    d = np.matmul(kron, np.ascontiguousarray(dU).reshape(a2, K * C))   # (9, K*C)
    dw = out if out is not None else np.empty((K, C, 3, 3), np.float32)
    if accumulate:
        dw += d.T.reshape(K, C, 3, 3)
    else:
        dw[...] = d.T.reshape(K, C, 3, 3)
    return dw


# --- direct convolution twins (via float32 im2col-free loops over taps) ---------------
def _osz(n, k, s, p, d):
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def direct_forward(x, w, bias, sh, sw, ph, pw, dh, dw, G):
    N, C, H, W = x.shape
    K, Cg, R, S = w.shape
    Ho, Wo = _osz(H, R, sh, ph, dh), _osz(W, S, sw, pw, dw)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    Kg = K // G
    y = np.zeros((N, G, Kg, Ho, Wo), np.float32)
    for r in range(R):
        for s in range(S):
            tap = xp[:, :, r * dh:r * dh + sh * (Ho - 1) + 1:sh,
                     s * dw:s * dw + sw * (Wo - 1) + 1:sw].reshape(N, G, Cg, Ho, Wo)
            y += np.einsum("gkc,ngchw->ngkhw", w[:, :, r, s].reshape(G, Kg, Cg), tap)
    y = y.reshape(N, K, Ho, Wo)
    if bias is not None:
        y += bias.reshape(1, K, 1, 1)
    return y


def direct_backward_data(dy, w, H, W, sh, sw, ph, pw, dh, dw, G):
    N, K, Ho, Wo = dy.shape
    _, Cg, R, S = w.shape
    Kg = K // G
    dxp = np.zeros((N, G, Cg, H + 2 * ph + sh + dh * R, W + 2 * pw + sw + dw * S), np.float32)
    dyg = dy.reshape(N, G, Kg, Ho, Wo)
    for r in range(R):
        for s in range(S):
            contrib = np.einsum("gkc,ngkhw->ngchw", w[:, :, r, s].reshape(G, Kg, Cg), dyg)
            dxp[:, :, :, r * dh:r * dh + sh * (Ho - 1) + 1:sh,
                s * dw:s * dw + sw * (Wo - 1) + 1:sw] += contrib
    return np.ascontiguousarray(dxp[:, :, :, ph:ph + H, pw:pw + W].reshape(N, G * Cg, H, W))


def direct_backward_weights(dy, x, R, S, sh, sw, ph, pw, dh, dw, G):
    N, C, H, W = x.shape
    K, Ho, Wo = dy.shape[1:]
    Cg, Kg = C // G, K // G
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    dwt = np.empty((K, Cg, R, S), np.float32)
    dyg = dy.reshape(N, G, Kg, Ho, Wo)
    for r in range(R):
        for s in range(S):
            tap = xp[:, :, r * dh:r * dh + sh * (Ho - 1) + 1:sh,
                     s * dw:s * dw + sw * (Wo - 1) + 1:sw].reshape(N, G, Cg, Ho, Wo)
            dwt[:, :, r, s] = np.einsum("ngkhw,ngchw->gkc", dyg, tap).reshape(K, Cg)
    return dwt


def swap01(src, out=None):
    d = out if out is not None else np.empty((src.shape[1], src.shape[0], src.shape[2]),
                                             np.float32)
    d[...] = src.transpose(1, 0, 2)
    return d


# --- dispatch --------------------------------------------------------------------------
_twins = sys.modules[__name__]
compiled_winograd_filter = resolve("winograd_filter", "dtnn._kernels._winograd", _twins)
compiled_winograd_input = resolve("winograd_input", "dtnn._kernels._winograd", _twins)
compiled_winograd_output = resolve("winograd_output", "dtnn._kernels._winograd", _twins)
compiled_winograd_dy = resolve("winograd_dy", "dtnn._kernels._winograd", _twins)
compiled_winograd_dfilter = resolve("winograd_dfilter", "dtnn._kernels._winograd", _twins)
compiled_direct_forward = resolve("direct_forward", "dtnn._kernels._direct", _twins)
compiled_direct_backward_data = resolve("direct_backward_data", "dtnn._kernels._direct", _twins)
compiled_direct_backward_weights = resolve("direct_backward_weights", "dtnn._kernels._direct",
                                           _twins)
compiled_swap01 = resolve("swap01", "dtnn._kernels._transpose", _twins)
