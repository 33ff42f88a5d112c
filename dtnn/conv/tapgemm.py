"""The ``tapgemm`` convolution variant: one GEMM per filter tap over the outputs where
that tap reads real pixels, so no product with zero padding is computed.

On small images "same" padding makes a large share of a convolution's products read
padding: a 3x3 filter with padding 1 on a 3x3 image computes 81 tap x position
products per channel pair, 32 of them (40 %) with zeros (VGG's fourth block on 28x28
inputs); on 2x2 images 20 of 36.  im2col, the fused kernels and torch/oneDNN compute
them all.  ``livetaps`` only drops taps that are dead for *every* output; here each
tap (r, s) is applied to exactly the rectangle of outputs whose input pixel
``(ho - ph + r*dh, wo - pw + s*dw)`` lies inside the image (stride 1):

    Y[ho0:ho1, wo0:wo1] += X[hi0:hi1, wi0:wi1] @ W[:, :, r, s]^T

with activations in pixel-major layout (H, W, N, C): each rectangle row is then one
contiguous (cols*N, C) matrix, and a tap is one batched GEMM over the rectangle's rows
(``dtnn.gemm.gemm_into``, on dtnn's OpenMP threads with the BLAS at one thread).
Backward: dX[rect_in] += dY[rect_out] @ W_rs and dW_rs = sum over the rows of
dY[rect_out]^T @ X[rect_in] (one GEMM per tap, the rows summed inside it).  The only
other work is the layout changes (x, dy, y, dx and the filters, each one transpose).

Exact arithmetic is the same sum as a direct convolution without the zero terms;
tested against the float64 direct reference and torch autograd
(tests/conv/test_tapgemm.py).  BestOf races it where at least 25 % of the products
read padding (3x3 filters on 3x3 and 2x2 images; not 1x1 images, ``livetaps``' case).
"""
from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np

from dtnn.conv.base import CONV_ALGORITHMS, ConvAlgorithm, ConvGeometry, bias_grad_into
from dtnn.conv.im2col import _reshape_view
from dtnn.gemm import gemm_into, transpose_into

#: race it in BestOf when at least this share of the products read padding
MIN_DEAD_SHARE = 0.25

# (tap index, output rows [ho0, ho1), output cols [wo0, wo1), input row/col of ho0/wo0)
Rect = Tuple[int, int, int, int, int, int, int]


def _span(size: int, out: int, pad: int, off: int) -> Tuple[int, int]:
    """Outputs [o0, o1) (stride 1) whose input position o - pad + off is in [0, size)."""
    o0 = max(0, pad - off)
    o1 = min(out, size + pad - off)
    return o0, max(o0, o1)


def tap_rects(g: ConvGeometry) -> List[Rect]:
    """Every tap's live output rectangle (empty taps left out), the largest first."""
    ho, wo = g.out_hw
    rects = []
    for r in range(g.R):
        h0, h1 = _span(g.H, ho, g.padding[0], r * g.dilation[0])
        for s in range(g.S):
            w0, w1 = _span(g.W, wo, g.padding[1], s * g.dilation[1])
            if h1 > h0 and w1 > w0:
                rects.append((r * g.S + s, h0, h1, w0, w1,
                              h0 - g.padding[0] + r * g.dilation[0],
                              w0 - g.padding[1] + s * g.dilation[1]))
    rects.sort(key=lambda t: -(t[2] - t[1]) * (t[4] - t[3]))
    return rects


def dead_share(g: ConvGeometry) -> float:
    """Share of the tap x output-position products that read padding."""
    ho, wo = g.out_hw
    total = g.R * g.S * ho * wo
    live = sum((h1 - h0) * (w1 - w0) for _, h0, h1, w0, w1, _, _ in tap_rects(g))
    return 1.0 - live / total if total else 0.0


def _pixel_major(a: np.ndarray) -> np.ndarray:
    """(N, C, H, W) -> contiguous (H, W, N, C)."""
    N, C, H, W = a.shape
    out = np.empty((H, W, N, C), np.float32)
    transpose_into(np.ascontiguousarray(a).reshape(N * C, H * W), out.reshape(H * W, N * C))
    return out


def _from_pixel_major(a: np.ndarray, out: np.ndarray) -> np.ndarray:
    """(H, W, N, C) -> out (N, C, H, W)."""
    H, W, N, C = a.shape
    transpose_into(a.reshape(H * W, N * C), out.reshape(N * C, H * W))
    return out


def _taps_major(w: np.ndarray) -> np.ndarray:
    """(K, C, R, S) -> contiguous (R*S, K, C): each tap's (K, C) block contiguous."""
    K, C, R, S = w.shape
    out = np.empty((R * S, K, C), np.float32)
    transpose_into(np.ascontiguousarray(w, np.float32).reshape(K * C, R * S),
                   out.reshape(R * S, K * C))
    return out


def _rows(a4: np.ndarray, h0: int, h1: int, w0: int, w1: int) -> np.ndarray:
    """a4[h0:h1, w0:w1] of an (H, W, N, X) array as (rows, cols*N, X) -- a view."""
    v = a4[h0:h1, w0:w1]
    out = v.reshape(h1 - h0, (w1 - w0) * a4.shape[2], a4.shape[3])
    assert np.shares_memory(out, a4)
    return out


@CONV_ALGORITHMS.register("tapgemm")
class TapGemmConv(ConvAlgorithm):
    """Per-tap GEMMs over each tap's live output rectangle (see the module doc)."""

    def supports(self, g: ConvGeometry) -> bool:
        ho, wo = g.out_hw
        return (g.stride == (1, 1) and g.groups == 1 and ho > 0 and wo > 0
                and dead_share(g) > 0.0)

    def worth_tuning(self, g: ConvGeometry) -> bool:
        return g.H * g.W > 1 and dead_share(g) >= MIN_DEAD_SHARE

    def forward(self, x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray],
                g: ConvGeometry) -> np.ndarray:
        N, K = g.N, g.K
        ho, wo = g.out_hw
        xt = _pixel_major(np.asarray(x, np.float32))
        wt = _taps_major(w)
        yt = np.empty((ho, wo, N, K), np.float32)
        rects = tap_rects(g)
        first_full = bool(rects) and \
            (rects[0][2] - rects[0][1], rects[0][4] - rects[0][3]) == (ho, wo)
        if not first_full:
            yt.fill(0)
        for i, (t, h0, h1, w0, w1, hi, wi) in enumerate(rects):
            xs = _rows(xt, hi, hi + h1 - h0, wi, wi + w1 - w0)
            ys = _rows(yt, h0, h1, w0, w1)
            gemm_into(xs, wt[t].T[None], ys, beta=0.0 if (i == 0 and first_full) else 1.0)
        y = _from_pixel_major(yt, np.empty((N, K, ho, wo), np.float32))
        if b is not None:
            y += np.asarray(b, np.float32).reshape(1, K, 1, 1)
        return y

    def backward(self, dy: np.ndarray, x: np.ndarray, w: np.ndarray, g: ConvGeometry,
                 need_dx: bool, dw_out: np.ndarray, db_out: Optional[np.ndarray]
                 ) -> Optional[np.ndarray]:
        N, C, H, W, K = g.N, g.C, g.H, g.W, g.K
        ho, wo = g.out_hw
        dy = np.asarray(dy, np.float32)
        if db_out is not None:
            bias_grad_into(np.ascontiguousarray(dy).reshape(N, K, ho * wo), db_out)
        xt = _pixel_major(np.asarray(x, np.float32))
        dyt = _pixel_major(dy)
        rects = tap_rects(g)
        # dW per tap, the rectangle's rows summed by the GEMM; dead taps get 0
        dwt = np.zeros((g.R * g.S, K, C), np.float32)
        for t, h0, h1, w0, w1, hi, wi in rects:
            xs = _rows(xt, hi, hi + h1 - h0, wi, wi + w1 - w0)
            dys = _rows(dyt, h0, h1, w0, w1)
            gemm_into(dys.transpose(0, 2, 1), xs, dwt[t][None])
        dwv = _reshape_view(dw_out, (K * C, g.R * g.S))
        if (dwv is not None and dwv.dtype == np.float32 and dwv.flags.c_contiguous
                and dwv.flags.writeable):
            transpose_into(dwt.reshape(g.R * g.S, K * C), dwv)
        else:
            np.copyto(dw_out, dwt.reshape(g.R * g.S, K * C).T.reshape(dw_out.shape))
        if not need_dx:
            return None
        wt = _taps_major(w)
        dxt = np.empty((H, W, N, C), np.float32)
        # the first (largest) tap may cover the whole input: it then writes, not adds
        first_full = bool(rects) and rects[0][5:] == (0, 0) and \
            (rects[0][2] - rects[0][1], rects[0][4] - rects[0][3]) == (H, W)
        if not first_full:
            dxt.fill(0)
        for i, (t, h0, h1, w0, w1, hi, wi) in enumerate(rects):
            dys = _rows(dyt, h0, h1, w0, w1)
            dxs = _rows(dxt, hi, hi + h1 - h0, wi, wi + w1 - w0)
            gemm_into(dys, wt[t][None], dxs, beta=0.0 if (i == 0 and first_full) else 1.0)
        return _from_pixel_major(dxt, np.empty((N, C, H, W), np.float32))
