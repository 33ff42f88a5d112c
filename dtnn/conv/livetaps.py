"""The ``livetaps`` convolution variant: drop the filter taps that only ever read padding.

On a small image with "same" padding some taps of the filter never touch a real input
pixel: a 3x3 filter with padding 1 on a 1x1 image reads only zeros through 8 of its 9
taps (VGG's last block on 28x28 inputs: 256->256 at 1x1).  Those taps add exact zeros
to the output, get a gradient of exactly zero, and pass nothing back to the input, yet
im2col, the fused kernels and torch/oneDNN all compute them -- 9x the work at 1x1.

Tap ``r`` (one dimension) reads input row ``ho*sh - ph + r*dh`` for output rows
``ho = 0..Ho-1``; it is live when one of those rows lies in ``[0, H)``.  The live taps
are a contiguous range ``[r0, r1)``, and the same convolution is computed by the
trimmed filter ``w[:, :, r0:r1, s0:s1]`` with padding ``ph - r0*dh`` (the variant
applies when that padding is >= 0 and gives the same output size, i.e. the dead taps
are trimmed symmetrically -- always so for odd filters with "same" padding).  The
trimmed convolution runs on ``im2col``; when it is a 1x1 convolution of 1x1 images
(the VGG case) it is one dense GEMM for the whole batch, (N, C) x (C, K), instead of N
matrix-vector products.  Backward: the dead taps' weight gradient is written as 0.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Optional, Tuple

import numpy as np

from dtnn.gemm import matmul

from dtnn.conv.base import CONV_ALGORITHMS, ConvAlgorithm, ConvGeometry, bias_grad_into
from dtnn.conv.im2col import Im2ColConv


def live_range(size: int, out: int, k: int, stride: int, pad: int, dil: int
               ) -> Tuple[int, int]:
    """[r0, r1): the filter taps (one dimension) that read at least one input pixel."""
    live = [r for r in range(k)
            if any(0 <= o * stride - pad + r * dil < size for o in range(out))]
    return (live[0], live[-1] + 1) if live else (0, 0)


def trimmed(g: ConvGeometry) -> Optional[Tuple[ConvGeometry, int, int, int, int]]:
    """(geometry of the trimmed convolution, r0, r1, s0, s1), or None when no tap is dead
    or the dead taps cannot be trimmed with symmetric padding."""
    ho, wo = g.out_hw
    if ho <= 0 or wo <= 0:
        return None
    r0, r1 = live_range(g.H, ho, g.R, g.stride[0], g.padding[0], g.dilation[0])
    s0, s1 = live_range(g.W, wo, g.S, g.stride[1], g.padding[1], g.dilation[1])
    if r1 <= r0 or s1 <= s0 or (r1 - r0, s1 - s0) == (g.R, g.S):
        return None
    ph, pw = g.padding[0] - r0 * g.dilation[0], g.padding[1] - s0 * g.dilation[1]
    if ph < 0 or pw < 0:
        return None
    t = replace(g, R=r1 - r0, S=s1 - s0, padding=(ph, pw))
    if t.out_hw != (ho, wo):
        return None
    return t, r0, r1, s0, s1


def _dense(t: ConvGeometry) -> bool:
    """The trimmed convolution is a plain (N, C) x (C, K) product: 1x1 filter on 1x1
    images, no padding, one group."""
    return (t.R == 1 and t.S == 1 and t.H == 1 and t.W == 1 and t.padding == (0, 0)
            and t.groups == 1)


@CONV_ALGORITHMS.register("livetaps")
class LiveTapsConv(ConvAlgorithm):
    """The convolution with the always-dead filter taps removed (see the module doc)."""

    def __init__(self):
        self.inner = Im2ColConv()

    def supports(self, g: ConvGeometry) -> bool:
        return trimmed(g) is not None

    def forward(self, x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray],
                g: ConvGeometry) -> np.ndarray:
        t, r0, r1, s0, s1 = self._trim(g)
        wt = np.ascontiguousarray(w[:, :, r0:r1, s0:s1], dtype=np.float32)
        if _dense(t):
            x2 = np.ascontiguousarray(x, dtype=np.float32).reshape(g.N, g.C)
            y = matmul(x2, wt.reshape(g.K, g.C).T)
            if b is not None:
                y += b.reshape(1, g.K)
            return y.reshape(g.N, g.K, 1, 1)
        self.inner.training = self.training
        return self.inner.forward(x, wt, b, t)

    def backward(self, dy: np.ndarray, x: np.ndarray, w: np.ndarray, g: ConvGeometry,
                 need_dx: bool, dw_out: np.ndarray, db_out: Optional[np.ndarray]
                 ) -> Optional[np.ndarray]:
        t, r0, r1, s0, s1 = self._trim(g)
        wt = np.ascontiguousarray(w[:, :, r0:r1, s0:s1], dtype=np.float32)
        # the gradient of the live taps straight into dw_out when it is a plain float32
        # array of w's shape (a view of the model's flat gradient), else via a temporary
        direct = (dw_out.shape == w.shape and dw_out.dtype == np.float32
                  and dw_out.flags.c_contiguous)
        full = dw_out if direct else np.empty(w.shape, np.float32)
        dwt = np.empty_like(wt)
        dx = None
        if _dense(t):
            dy2 = np.ascontiguousarray(dy, dtype=np.float32).reshape(g.N, g.K)
            x2 = np.ascontiguousarray(x, dtype=np.float32).reshape(g.N, g.C)
            matmul(dy2.T, x2, out=dwt.reshape(g.K, g.C))
            if db_out is not None:
                bias_grad_into(dy2[:, :, None], db_out)
            if need_dx:
                dx = matmul(dy2, wt.reshape(g.K, g.C)).reshape(g.N, g.C, 1, 1)
        else:
            dx = self.inner.backward(dy, x, wt, t, need_dx, dwt, db_out)
        full.fill(0)
        full[:, :, r0:r1, s0:s1] = dwt
        if not direct:
            np.copyto(dw_out, full.reshape(dw_out.shape))
        return dx

    @staticmethod
    def _trim(g: ConvGeometry):
        tr = trimmed(g)
        if tr is None:
            raise ValueError(f"livetaps: no dead filter taps to drop in {g.tag()}")
        return tr
