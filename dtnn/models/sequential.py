"""``Sequential``: a model from a list of layers (blocks included), like the zoo's.

    net = dtnn.Sequential([
        Conv2D(16, 3, padding=1), BatchNorm(), ReLU(),
        Residual([Conv2D(16, 3, padding=1), BatchNorm(), ReLU(), Conv2D(16, 3, padding=1)]),
        GlobalAvgPool(), Dense(10)], input_shape=(1, 28, 28))

It is a ``Model``: flat parameter and gradient vectors, ``forward``/``backward``,
``summary()``, ``state_dict()``, checkpoints (``Model.from_config`` rebuilds it), the
gradient exchange and the optimizers work on it unchanged.
"""
from __future__ import annotations

from typing import Optional, Sequence

from dtnn.layers.base import Layer
from dtnn.models.model import Model


class Sequential(Model):
    """Layers applied in order.  With ``input_shape`` (per sample, e.g. ``(1, 28, 28)``)
    the model is built at once (parameters initialised from ``seed``); without it, call
    ``build(seed, input_shape=...)`` later."""

    def __init__(self, layers: Sequence[Layer], input_shape: Optional[Sequence[int]] = None,
                 name: str = "sequential", seed: int = 0):
        layers = list(layers)
        bad = [l for l in layers if not isinstance(l, Layer)]
        if bad:
            raise TypeError(f"Sequential: expected dtnn layers, got {type(bad[0]).__name__}")
        super().__init__(layers, tuple(input_shape or ()), name=name)
        if input_shape is not None:
            self.build(seed)

    def build(self, seed: int = 0, input_shape: Optional[Sequence[int]] = None) -> "Sequential":
        if input_shape is not None:
            self.input_shape = tuple(int(d) for d in input_shape)
        if not self.input_shape:
            raise ValueError("Sequential.build: the per-sample input_shape is unknown")
        super().build(seed)
        return self
