"""Fully connected layer."""
from __future__ import annotations

from typing import Optional

import numpy as np

from dtnn.gemm import matmul

from dtnn.errors import ConfigError
from dtnn.layers._util import jsonable, require_rank
from dtnn.layers.base import LAYERS, Layer, Shape, init_bias, init_weights


@LAYERS.register("dense")
class Dense(Layer):
    """y = x @ weight + bias for x of shape (N, F).

    ``weight`` is stored **(F, units)** (input features major), so the forward pass is a
    plain row-major GEMM and dW = x^T @ dy; it gets weight decay, ``bias`` (units,) not.
    """

    def __init__(self, units: int, bias: bool = True, init: str = "glorot"):
        super().__init__(units=jsonable(units), bias=bool(bias), init=init)
        if int(units) < 1:
            raise ConfigError(f"dense: units must be >= 1, got {units!r}")
        self.units = int(units)
        self.use_bias = bool(bias)
        self._x: Optional[np.ndarray] = None

    def build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        (F,) = require_rank("dense", input_shape, (1,),
                            hint="add a Flatten (or global pooling) layer before it")
        self.input_shape = (F,)
        self.add_param("weight", init_weights(rng, (F, self.units), F, self.units,
                                              self.config["init"]), decay=True)
        if self.use_bias:
            self.add_param("bias", init_bias(rng, self.units, F, self.config["init"]))
        self.output_shape = (self.units,)
        return self.output_shape

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        if x.ndim != 2:
            raise ValueError(f"{self.name}: expected input (N, F), got {x.shape}")
        x = x if x.dtype == np.float32 else x.astype(np.float32)
        self._x = x
        y = matmul(x, self.params["weight"])
        if self.use_bias:
            y += self.params["bias"]
        return y

    def backward(self, dy: np.ndarray) -> Optional[np.ndarray]:
        x, self._x = self._x, None
        if x is None:
            raise RuntimeError(f"{self.name}: backward called without a forward")
        dy = dy if dy.dtype == np.float32 else dy.astype(np.float32)
        matmul(x.T, dy, out=self.grads["weight"])
        if self.use_bias:
            np.sum(dy, axis=0, out=self.grads["bias"])
        if not self.needs_input_grad:
            return None
        return matmul(dy, self.params["weight"].T)
