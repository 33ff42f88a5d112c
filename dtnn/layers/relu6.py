"""ReLU6: min(max(x, 0), 6), the bounded activation of MobileNet V2."""
from __future__ import annotations

from typing import Optional

import numpy as np

from dtnn.layers.base import LAYERS, Layer


@LAYERS.register("relu6")
class ReLU6(Layer):
    """``min(max(x, 0), 6)``; the gradient passes where ``0 < x < 6`` (as torch's
    ``hardtanh`` backward: none at the two kinks).  Keeps a byte mask, not the input."""

    def __init__(self):
        super().__init__()
        self._mask: Optional[np.ndarray] = None

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        y = np.clip(x, np.float32(0), np.float32(6), dtype=np.float32)
        # strictly inside (0, 6): y itself tells, once clipped
        self._mask = ((y > 0) & (y < 6)) if training else None
        return y

    def backward(self, dy: np.ndarray) -> Optional[np.ndarray]:
        mask, self._mask = self._mask, None
        if mask is None:
            raise RuntimeError(f"{self.name}: backward needs a forward with training=True")
        if not self.needs_input_grad:
            return None
        return np.multiply(dy, mask, dtype=np.float32)
