"""ReLU6: min(max(x, 0), 6), the bounded activation of MobileNet V2."""
from __future__ import annotations

import numpy as np

from dtnn.layers.activation import _MaskedActivation
from dtnn.layers.base import LAYERS


@LAYERS.register("relu6")
class ReLU6(_MaskedActivation):
    """``min(max(x, 0), 6)``; the gradient passes where ``0 < x < 6`` (as torch's
    ``hardtanh`` backward: none at the two kinks).  Keeps a byte mask, not the input."""

    def _apply(self, x: np.ndarray) -> np.ndarray:
        return np.clip(x, np.float32(0), np.float32(6), dtype=np.float32)

    def _keep(self, y: np.ndarray) -> np.ndarray:
        # strictly inside (0, 6): y itself tells, once clipped
        return (y > 0) & (y < 6)
