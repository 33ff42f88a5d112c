"""The convolution-variant contract.

``Conv2D`` (in ``dtnn.layers``) owns the parameters; *how* the convolution is computed
is delegated to a ``ConvAlgorithm`` picked by name from ``CONV_ALGORITHMS``.  A variant
is stateless apart from what one forward call caches for the matching backward call
(im2col caches nothing big: it recomputes columns chunk by chunk).

All arrays are float32, NCHW; weights are (K, C // groups, R, S).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from dtnn.registry import Registry

CONV_ALGORITHMS = Registry("convolution algorithm")

#: what a Conv2D (and every zoo model, and ``model.conv_algorithm``) computes with unless
#: told otherwise: the fastest variant per layer shape, tuned online (dtnn.conv.bestof)
DEFAULT_ALGORITHM = "bestof"


@dataclass(frozen=True)
class ConvGeometry:
    """Everything about a convolution except the data (also a tuning key)."""
    N: int
    C: int
    H: int
    W: int
    K: int
    R: int
    S: int
    stride: Tuple[int, int] = (1, 1)
    padding: Tuple[int, int] = (0, 0)
    dilation: Tuple[int, int] = (1, 1)
    groups: int = 1

    @property
    def out_hw(self) -> Tuple[int, int]:
        (sh, sw), (ph, pw), (dh, dw) = self.stride, self.padding, self.dilation
        ho = (self.H + 2 * ph - dh * (self.R - 1) - 1) // sh + 1
        wo = (self.W + 2 * pw - dw * (self.S - 1) - 1) // sw + 1
        return ho, wo

    def tag(self) -> str:
        """Short readable form (tuning reports and cache keys)."""
        (sh, sw), (ph, pw), (dh, dw) = self.stride, self.padding, self.dilation
        return (f"N{self.N} {self.C}->{self.K} {self.H}x{self.W} k{self.R}x{self.S} "
                f"s{sh}{'' if sh == sw else 'x%d' % sw} p{ph}{'' if ph == pw else 'x%d' % pw}"
                f" d{dh}{'' if dh == dw else 'x%d' % dw} g{self.groups}")

    def with_batch(self, n: int) -> "ConvGeometry":
        from dataclasses import replace
        return replace(self, N=n)


class ConvAlgorithm:
    """One way to compute a 2-D convolution and its two gradients."""

    registry_name = "conv"

    #: set by the layer before each call: training (forward followed by backward) or
    #: inference; variants may cache more in inference (e.g. transformed filters)
    training: bool = True
    #: set by a tuner: the problem key of the current call (nested tuners reuse it)
    tune_key = None

    def supports(self, g: ConvGeometry) -> bool:
        return True

    def worth_tuning(self, g: ConvGeometry) -> bool:
        """Whether an auto-tuner should race this variant on ``g`` (it may support
        shapes on which it cannot win and would only waste tuning time)."""
        return True

    def tuning_settled(self, key) -> bool:
        """False while a nested choice inside this variant is still being tuned."""
        return True

    def forward(self, x: np.ndarray, w: np.ndarray, b: Optional[np.ndarray],
                g: ConvGeometry) -> np.ndarray:
        """y = conv(x, w) + b, shape (N, K, Ho, Wo)."""
        raise NotImplementedError

    def backward(self, dy: np.ndarray, x: np.ndarray, w: np.ndarray, g: ConvGeometry,
                 need_dx: bool, dw_out: np.ndarray, db_out: Optional[np.ndarray]
                 ) -> Optional[np.ndarray]:
        """Write dL/dw into ``dw_out`` and dL/db into ``db_out`` (in place); return
        dL/dx (or None when ``need_dx`` is False)."""
        raise NotImplementedError


def bias_grad_into(dy: np.ndarray, db_out: np.ndarray) -> None:
    """db_out[k] = sum of dy[:, k] (dy (N, K, ...) float32, contiguous): the compiled,
    threaded channel sum (numpy's is one thread); np.sum for an output it cannot take."""
    from dtnn._kernels import channel_sum
    dy3 = dy.reshape(dy.shape[0], dy.shape[1], -1)
    if (db_out.dtype == np.float32 and db_out.flags.c_contiguous
            and db_out.flags.writeable and db_out.shape == (dy.shape[1],)):
        channel_sum(dy3, out=db_out)
    else:
        np.sum(dy3, axis=(0, 2), out=db_out)
