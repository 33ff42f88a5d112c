"""The ``direct`` convolution variant: loops over taps in C+OpenMP, no workspace.

Meant for tiny layers -- first layers with 1-3 input channels, small 1x1 convs -- where
im2col's unfolding and a skinny GEMM cost more than the arithmetic.  It supports every
geometry (stride, padding, dilation, groups), but ``worth_tuning`` keeps it out of the
BestOf race on large layers, where it cannot win and one timed call would cost seconds.
"""
from __future__ import annotations

import numpy as np

from dtnn.conv import kernels as K_
from dtnn.conv.base import CONV_ALGORITHMS, ConvAlgorithm, ConvGeometry, bias_grad_into


def _args(g: ConvGeometry):
    return (g.stride[0], g.stride[1], g.padding[0], g.padding[1], g.dilation[0],
            g.dilation[1], g.groups)


@CONV_ALGORITHMS.register("direct")
class DirectConv(ConvAlgorithm):
    def worth_tuning(self, g: ConvGeometry) -> bool:
        cg = g.C // g.groups
        return cg <= 4 or (g.R * g.S == 1 and cg * (g.K // g.groups) <= 64 * 64)

    def forward(self, x, w, b, g):
        return K_.compiled_direct_forward(
            np.ascontiguousarray(x, np.float32), np.ascontiguousarray(w, np.float32),
            None if b is None else np.ascontiguousarray(b, np.float32), *_args(g))

    def backward(self, dy, x, w, g, need_dx, dw_out, db_out):
        dy = np.ascontiguousarray(dy, np.float32)
        if db_out is not None:
            bias_grad_into(dy, db_out)
        dw_out[...] = K_.compiled_direct_backward_weights(
            dy, np.ascontiguousarray(x, np.float32), g.R, g.S, *_args(g))
        if not need_dx:
            return None
        return K_.compiled_direct_backward_data(dy, np.ascontiguousarray(w, np.float32),
                                                g.H, g.W, *_args(g))
