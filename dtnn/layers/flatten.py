"""Flatten every per-sample dimension into one feature axis."""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from dtnn.layers.base import LAYERS, Layer, Shape


@LAYERS.register("flatten")
class Flatten(Layer):
    """(N, d1, d2, ...) -> (N, d1*d2*...); a view when the input is contiguous."""

    def __init__(self):
        super().__init__()
        self._xshape: Tuple[int, ...] = ()

    def build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        self.input_shape = tuple(int(d) for d in input_shape)
        self.output_shape = (int(np.prod(self.input_shape, dtype=np.int64)),)
        return self.output_shape

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        self._xshape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, dy: np.ndarray) -> Optional[np.ndarray]:
        if not self.needs_input_grad:
            return None
        return dy.reshape(self._xshape)
