"""Shared helpers for the layer tests: torch references and a tiny model wrapper."""
from __future__ import annotations

from typing import Dict, Optional, Sequence

import numpy as np
import torch

from dtnn.layers.base import Layer
from dtnn.models.model import Model

torch.set_num_threads(1)


def rand(shape, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def t64(a: np.ndarray, grad: bool = False) -> torch.Tensor:
    return torch.tensor(np.asarray(a, np.float64), requires_grad=grad)


def close(actual, expected, tol: float = 1e-5, what: str = "") -> None:
    """Relative comparison, with the absolute floor scaled by the reference's size."""
    expected = expected.detach().numpy() if isinstance(expected, torch.Tensor) else expected
    expected = np.asarray(expected, np.float64)
    actual = np.asarray(actual)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    scale = max(1.0, float(np.abs(expected).max())) if expected.size else 1.0
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * scale, err_msg=what)


class Probe(Layer):
    """Identity first layer: lets a test see the d(input) the next layer returns
    (the model clears ``needs_input_grad`` only on this first layer)."""

    registry_name = "probe"

    def __init__(self):
        super().__init__()
        self.dx: Optional[np.ndarray] = None

    def forward(self, x, training):
        return x

    def backward(self, dy):
        self.dx = dy
        return None


def run_model(layer: Layer, x: np.ndarray, dy: Optional[np.ndarray], seed: int = 0,
              training: bool = True, setup=None):
    """Build Model([Probe, layer]) on x's per-sample shape, run forward (+ backward).

    Returns (y, dx, grads, model): ``grads`` are read back out of ``model.flat_grads``
    through the slots, so they prove the layer wrote into the packed vector.
    """
    probe = Probe()
    model = Model([probe, layer], x.shape[1:]).build(seed)
    if setup is not None:
        setup(layer)
    y = model.forward(x, training=training)
    grads: Dict[str, np.ndarray] = {}
    if dy is not None:
        model.backward(dy)
        for s in model.slots:
            assert s.layer_index == 1
            grads[s.name] = model.flat_grads[s.offset:s.offset + s.size].reshape(s.shape)
            assert np.shares_memory(layer.grads[s.name], model.flat_grads), s.name
    return y, probe.dx, grads, model


def set_params(layer: Layer, values: Dict[str, np.ndarray]) -> None:
    """Overwrite parameters in place (they are views into the flat vector)."""
    for k, v in values.items():
        layer.params[k][...] = v


def torch_backward(y: torch.Tensor, dy: np.ndarray, leaves: Sequence[torch.Tensor]):
    grads = torch.autograd.grad(y, list(leaves), grad_outputs=t64(dy), allow_unused=True)
    return [None if g is None else g.numpy() for g in grads]
