"""(Dynamic) k-max pooling (Kalchbrenner, Grefenstette & Blunsom, 2014).

For every feature map, flattened to a sequence of length ``L`` (H*W for (C, H, W)
input, L for (C, L) input), keep the ``k`` largest activations **in their original
order**.  Output per sample: (C, k).

``k`` is either fixed or dynamic: ``k = max(k_top, ceil((num_layers - layer) /
num_layers * L))`` where ``layer`` is this pooling layer's 1-based index among the
``num_layers`` convolutional layers of the network and ``L`` the input length of the
current batch (so k adapts to the sequence length).
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np

from dtnn.errors import ConfigError
from dtnn.layers._util import require_rank
from dtnn.layers.base import LAYERS, Layer, Shape


@LAYERS.register("kmaxpool")
class KMaxPool(Layer):
    """k-max pooling: keep the k largest values of each feature map in their original order (a
    fixed ``k``, or the dynamic k of Kalchbrenner et al. from ``k_top``, ``layer``,
    ``num_layers``)."""
    def __init__(self, k: Optional[int] = None, k_top: Optional[int] = None,
                 layer: Optional[int] = None, num_layers: Optional[int] = None):
        super().__init__(k=k, k_top=k_top, layer=layer, num_layers=num_layers)
        dynamic = (k_top, layer, num_layers)
        if k is not None:
            if any(v is not None for v in dynamic):
                raise ConfigError("kmaxpool: give either k, or k_top + layer + num_layers, "
                                  "not both")
            if int(k) < 1:
                raise ConfigError(f"kmaxpool: k must be >= 1, got {k!r}")
        else:
            if any(v is None for v in dynamic):
                raise ConfigError("kmaxpool: give either a fixed k, or all of k_top, layer "
                                  "and num_layers for dynamic k")
            if int(k_top) < 1 or int(num_layers) < 1 or not 1 <= int(layer) <= int(num_layers):
                raise ConfigError(f"kmaxpool: need k_top >= 1, num_layers >= 1 and "
                                  f"1 <= layer <= num_layers (got k_top={k_top}, "
                                  f"layer={layer}, num_layers={num_layers})")
        self._idx: Optional[np.ndarray] = None
        self._xshape: Tuple[int, ...] = ()

    def k_for(self, length: int) -> int:
        """The k used for feature maps of ``length`` elements."""
        c = self.config
        if c["k"] is not None:
            k = int(c["k"])
        else:
            frac = (int(c["num_layers"]) - int(c["layer"])) / int(c["num_layers"])
            k = max(int(c["k_top"]), math.ceil(frac * length))
        if k > length:
            raise ConfigError(f"kmaxpool: k={k} exceeds the feature-map length {length}")
        return k

    def build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        shape = require_rank("kmaxpool", input_shape, (2, 3))
        length = int(np.prod(shape[1:]))
        self.input_shape = shape
        self.output_shape = (shape[0], self.k_for(length))
        return self.output_shape

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        N, C = x.shape[:2]
        flat = x.reshape(N, C, -1)
        L = flat.shape[2]
        k = self.k_for(L)
        self._xshape = x.shape
        if k == L:
            idx = np.broadcast_to(np.arange(L), (N, C, L))
            self._idx = idx
            return np.array(flat, dtype=np.float32)
        # the k largest (unordered), then back into their original order
        idx = np.argpartition(flat, L - k, axis=2)[:, :, L - k:]
        idx.sort(axis=2)
        self._idx = idx
        return np.take_along_axis(flat, idx, axis=2).astype(np.float32, copy=False)

    def backward(self, dy: np.ndarray) -> Optional[np.ndarray]:
        idx, self._idx = self._idx, None
        if not self.needs_input_grad:
            return None
        N, C = self._xshape[:2]
        dx = np.zeros((N, C, int(np.prod(self._xshape[2:]))), np.float32)
        np.put_along_axis(dx, idx, dy, axis=2)
        return dx.reshape(self._xshape)
