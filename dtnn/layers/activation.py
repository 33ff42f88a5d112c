"""Element-wise activations: ReLU and PReLU."""
from __future__ import annotations

from typing import Optional

import numpy as np

from dtnn.errors import ConfigError
from dtnn.layers.base import LAYERS, Layer, Shape


class _MaskedActivation(Layer):
    """An element-wise activation whose gradient is ``dy * mask``: in training,
    ``forward`` keeps ``_keep(y)`` and ``backward`` multiplies dy by ``_grad_mask`` of it."""

    def __init__(self):
        super().__init__()
        self._kept: Optional[np.ndarray] = None

    def _apply(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _keep(self, y: np.ndarray) -> np.ndarray:
        return y

    def _grad_mask(self, kept: np.ndarray) -> np.ndarray:
        return kept

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        y = self._apply(x)
        self._kept = self._keep(y) if training else None
        return y

    def backward(self, dy: np.ndarray) -> Optional[np.ndarray]:
        kept = self._pop_saved("_kept")
        if not self.needs_input_grad:
            return None
        return self._masked_grad(dy, kept)

    def _masked_grad(self, dy: np.ndarray, kept: np.ndarray) -> np.ndarray:
        return np.multiply(dy, self._grad_mask(kept), dtype=np.float32)


@LAYERS.register("relu")
class ReLU(_MaskedActivation):
    """max(x, 0).  Never modifies its input or dy.  In training it keeps a reference
    to its output (usually alive anyway as the next layer's cached input) and derives
    the backward mask from it, so it needs no extra activation memory.

    Forward and backward run the compiled kernels (``dtnn._kernels.relu_forward`` /
    ``relu_backward``: one OpenMP pass, bit masks, same bits at any thread count); in
    numpy they were single-threaded (the backward two passes with a bool temporary) and
    cost 0.9-1.7x torch's time on vgg16_bn at 2 threads.  Small inputs gain nothing
    from numpy (~1 us either way), so there is no size switch."""

    def _apply(self, x: np.ndarray) -> np.ndarray:
        from dtnn._kernels import relu_forward
        return relu_forward(np.ascontiguousarray(x, dtype=np.float32))

    def _masked_grad(self, dy: np.ndarray, y: np.ndarray) -> np.ndarray:
        from dtnn._kernels import relu_backward
        return relu_backward(np.ascontiguousarray(dy, dtype=np.float32), y)

    def _grad_mask(self, y: np.ndarray) -> np.ndarray:
        return y > 0


@LAYERS.register("prelu")
class PReLU(Layer):
    """x for x > 0, alpha * x otherwise.

    ``alpha`` has one slope per channel (axis 1 of the batch) when ``channelwise``,
    else a single shared slope, stored with shape (1,).  No weight decay.
    """

    def __init__(self, init: float = 0.25, channelwise: bool = True):
        super().__init__(init=float(init), channelwise=bool(channelwise))
        self._x: Optional[np.ndarray] = None

    def build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        shape = tuple(int(d) for d in input_shape)
        if not shape:
            raise ConfigError("prelu needs at least a 1-D per-sample input")
        n = shape[0] if self.config["channelwise"] else 1
        self.add_param("alpha", np.full(n, self.config["init"], np.float32))
        self.input_shape = self.output_shape = shape
        return self.output_shape

    def _alpha(self, ndim: int) -> np.ndarray:
        a = self.params["alpha"]
        return a.reshape((1, a.size) + (1,) * (ndim - 2))

    def _kernel_shape(self, x: np.ndarray):
        """(N, C, L) for the compiled kernels (images: one pass, threaded by channel),
        or None for the numpy path (vectors, where L would be 1)."""
        if x.ndim < 3:
            return None
        return x.shape[0], x.shape[1], int(np.prod(x.shape[2:]))

    def _channel_alpha(self, C: int) -> np.ndarray:
        a = self.params["alpha"]
        return a if a.size == C else np.full(C, a[0], np.float32)

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        x = x if x.dtype == np.float32 else x.astype(np.float32)
        self._x = x if training else None
        shape3 = self._kernel_shape(x)
        if shape3 is not None:
            from dtnn._kernels import prelu_forward
            x3 = np.ascontiguousarray(x).reshape(shape3)
            return prelu_forward(x3, self._channel_alpha(shape3[1])).reshape(x.shape)
        neg = np.minimum(x, np.float32(0))
        y = np.maximum(x, np.float32(0))
        neg *= self._alpha(x.ndim)
        y += neg
        return y

    def backward(self, dy: np.ndarray) -> Optional[np.ndarray]:
        x = self._pop_saved("_x")
        shape3 = self._kernel_shape(x)
        if shape3 is not None:
            from dtnn._kernels import prelu_backward
            dx, dalpha = prelu_backward(
                np.ascontiguousarray(dy, dtype=np.float32).reshape(shape3),
                np.ascontiguousarray(x).reshape(shape3), self._channel_alpha(shape3[1]),
                self.needs_input_grad)
            if not self.config["channelwise"]:
                dalpha = np.array([dalpha.sum(dtype=np.float64)], np.float32)
            self.set_grad("alpha", dalpha)
            return None if dx is None else dx.reshape(x.shape)
        neg = np.minimum(x, np.float32(0))
        neg *= dy  # dL/dalpha contributions: dy * x where x < 0
        axes = tuple(i for i in range(x.ndim) if i != 1) if self.config["channelwise"] else None
        self.set_grad("alpha", np.sum(neg, axis=axes, dtype=np.float32).reshape(-1))
        if not self.needs_input_grad:
            return None
        return np.where(x > 0, dy, dy * self._alpha(x.ndim)).astype(np.float32, copy=False)
