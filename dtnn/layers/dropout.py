"""Inverted dropout."""
from __future__ import annotations

from typing import Optional

import numpy as np

from dtnn.errors import ConfigError
from dtnn.layers.base import LAYERS, Layer


@LAYERS.register("dropout")
class Dropout(Layer):
    """Zero each element with probability ``rate`` (independently per element and
    sample) and scale the survivors by 1 / (1 - rate); identity in inference.
    The mask comes from ``self.rng`` (set by ``Model.build``)."""

    uses_rng = True

    def __init__(self, rate: float = 0.5):
        super().__init__(rate=float(rate))
        if not 0.0 <= float(rate) < 1.0:
            raise ConfigError(f"dropout: rate must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self._mask: Optional[np.ndarray] = None

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        if not training or self.rate == 0.0:
            self._mask = None
            return x
        if self.rng is None:
            raise RuntimeError(f"{self.name}: no rng (build the layer through Model.build "
                               f"or set layer.rng)")
        # float32 uniforms, turned in place into the scaled keep-mask {0, 1/(1-rate)}
        mask = self.rng.random(x.shape, dtype=np.float32)
        keep = mask >= np.float32(self.rate)
        np.multiply(keep, np.float32(1.0 / (1.0 - self.rate)), out=mask)
        self._mask = mask
        return np.multiply(x, mask, dtype=np.float32)

    def backward(self, dy: np.ndarray) -> Optional[np.ndarray]:
        mask, self._mask = self._mask, None
        if not self.needs_input_grad:
            return None
        if mask is None:
            return dy
        return np.multiply(dy, mask, dtype=np.float32)
