"""The ``implicit`` convolution variant: shifted-GEMM accumulation, no im2col buffer.

For stride 1 the patch of tap (r, s) for *every* output pixel is a contiguous window
of the zero-padded, flattened image: with Wp the padded width, output pixel
(ho, wo) reads padded pixel (ho + r*dh)*Wp + wo + s*dw.  Computing the output on the
padded width (Ho x Wp, the Wp - Wo extra columns are discarded) turns the convolution
into R*S GEMMs straight from strided *views* of the padded input::

    Y_ext (K, Ho*Wp) = sum_rs  W[:, :, r, s] (K, C) @ Xpad_flat[:, off_rs : off_rs + Ho*Wp]

so the only workspace is the padded copy of a chunk of images (C*Hp*Wp per image,
versus C*R*S*Ho*Wo for im2col: ~R*S times less).  The gradients use the same windows:
dW[:, :, r, s] = dY_ext @ window^T (with dY_ext zero on the extra columns) and dX_pad
accumulates W_rs^T @ dY_ext into the shifted windows.  Stride 1, groups 1, any padding
and dilation.
"""
from __future__ import annotations

import numpy as np

from dtnn.gemm import matmul

from dtnn.conv.base import CONV_ALGORITHMS, ConvAlgorithm, ConvGeometry, bias_grad_into
from dtnn.conv.im2col import _workspace


@CONV_ALGORITHMS.register("implicit")
class ImplicitConv(ConvAlgorithm):
    workspace_bytes: int = 4 << 20

    def supports(self, g: ConvGeometry) -> bool:
        return g.stride == (1, 1) and g.groups == 1

    @staticmethod
    def _dims(g: ConvGeometry):
        ph, pw = g.padding
        Hp, Wp = g.H + 2 * ph, g.W + 2 * pw
        ho, wo = g.out_hw
        extra = (g.S - 1) * g.dilation[1]
        offs = [(r, s, r * g.dilation[0] * Wp + s * g.dilation[1])
                for r in range(g.R) for s in range(g.S)]
        return Hp, Wp, ho, wo, Hp * Wp + extra, ho * Wp, offs

    def _chunk(self, g: ConvGeometry, per_image_floats: int) -> int:
        return int(max(1, min(g.N, self.workspace_bytes // max(4 * per_image_floats, 1))))

    def _pad(self, x, g, n0, nb, Hp, Wp, total, name):
        C, H, W = g.C, g.H, g.W
        ph, pw = g.padding
        xp = _workspace(name, nb * C * total).reshape(nb, C, total)
        xp[:, :, Hp * Wp:] = 0
        img = xp[:, :, :Hp * Wp].reshape(nb, C, Hp, Wp)
        if ph or pw:
            img[:, :, :ph] = 0
            img[:, :, ph + H:] = 0
            img[:, :, :, :pw] = 0
            img[:, :, :, pw + W:] = 0
        img[:, :, ph:ph + H, pw:pw + W] = x[n0:n0 + nb]
        return xp

    def forward(self, x, w, b, g):
        x = np.ascontiguousarray(x, np.float32)
        w = np.ascontiguousarray(w, np.float32)
        N, C, K = g.N, g.C, g.K
        Hp, Wp, ho, wo, total, L, offs = self._dims(g)
        wt = np.ascontiguousarray(w.transpose(2, 3, 0, 1))  # (R, S, K, C)
        chunk = self._chunk(g, C * total + 2 * K * L)
        y = np.empty((N, K, ho, wo), np.float32)
        for n0 in range(0, N, chunk):
            nb = min(chunk, N - n0)
            xp = self._pad(x, g, n0, nb, Hp, Wp, total, "impl_x")
            acc = _workspace("impl_y", nb * K * L).reshape(nb, K, L)
            tmp = _workspace("impl_t", nb * K * L).reshape(nb, K, L)
            for i, (r, s, off) in enumerate(offs):
                if i == 0:
                    matmul(wt[r, s], xp[:, :, off:off + L], out=acc)
                else:
                    matmul(wt[r, s], xp[:, :, off:off + L], out=tmp)
                    acc += tmp
            y[n0:n0 + nb] = acc.reshape(nb, K, ho, Wp)[:, :, :, :wo]
        if b is not None:
            y += np.asarray(b, np.float32).reshape(1, K, 1, 1)
        return y

    def backward(self, dy, x, w, g, need_dx, dw_out, db_out):
        x = np.ascontiguousarray(x, np.float32)
        w = np.ascontiguousarray(w, np.float32)
        dy = np.ascontiguousarray(dy, np.float32)
        N, C, K, H, W = g.N, g.C, g.K, g.H, g.W
        ph, pw = g.padding
        Hp, Wp, ho, wo, total, L, offs = self._dims(g)
        if db_out is not None:
            bias_grad_into(dy, db_out)
        wtT = np.ascontiguousarray(w.transpose(2, 3, 1, 0))  # (R, S, C, K)
        dwt = np.zeros((g.R, g.S, K, C), np.float32)
        dx = np.empty((N, C, H, W), np.float32) if need_dx else None
        chunk = self._chunk(g, 2 * C * total + K * L + K * C)
        for n0 in range(0, N, chunk):
            nb = min(chunk, N - n0)
            xp = self._pad(x, g, n0, nb, Hp, Wp, total, "impl_x")
            dye = _workspace("impl_y", nb * K * L).reshape(nb, K, ho, Wp)
            dye[:, :, :, wo:] = 0
            dye[:, :, :, :wo] = dy[n0:n0 + nb]
            dyf = dye.reshape(nb, K, L)
            part = _workspace("impl_w", nb * K * C).reshape(nb, K, C)
            if need_dx:
                dxp = _workspace("impl_dx", nb * C * total).reshape(nb, C, total)
                dxp[...] = 0
                tmp = _workspace("impl_t", nb * C * L).reshape(nb, C, L)
            for r, s, off in offs:
                matmul(dyf, xp[:, :, off:off + L].transpose(0, 2, 1), out=part)
                dwt[r, s] += part.sum(axis=0)
                if need_dx:
                    matmul(wtT[r, s], dyf, out=tmp)
                    dxp[:, :, off:off + L] += tmp
            if need_dx:
                dx[n0:n0 + nb] = dxp[:, :, :Hp * Wp].reshape(nb, C, Hp, Wp)[
                    :, :, ph:ph + H, pw:pw + W]
        dw_out[...] = dwt.transpose(2, 3, 0, 1)
        return dx
