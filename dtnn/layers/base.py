"""The layer contract: pure maths, no MPI, no I/O.

A layer works on float32 NCHW batches (or (N, F) for dense data).  Shapes passed to
``build`` and returned by it are *per-sample* shapes, without the batch dimension.

Parameters and gradients live in ``self.params`` / ``self.grads`` (name -> array).
After ``Model.build`` packs them, these arrays are **views into the model's flat
parameter and gradient vectors** (that is what lets the optimizer update everything
in one vectorised pass and the gradient reducer send contiguous buckets).  So a layer
must

* read ``self.params[name]`` on every call (never cache the array object), and
* write gradients *in place*: ``self.set_grad(name, value)`` or ``np.matmul(..., out=g)``;
  never rebind ``self.grads[name]``.

Non-trainable state that must be checkpointed (BatchNorm running statistics) goes in
``self.buffers``; layers with randomness (Dropout) get ``self.rng`` at build time.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np

from dtnn.registry import Registry

LAYERS = Registry("layer")

Shape = Tuple[int, ...]


class Layer:
    """Base class. Subclasses register with ``@LAYERS.register("name")``."""

    registry_name: str = "layer"
    #: names of parameters that get weight decay (weights yes, biases/BN no)
    decay_params: Tuple[str, ...] = ()

    def __init__(self, **config: Any):
        self.config: Dict[str, Any] = dict(config)
        self.params: Dict[str, np.ndarray] = {}
        self.grads: Dict[str, np.ndarray] = {}
        self.buffers: Dict[str, np.ndarray] = {}
        self.input_shape: Optional[Shape] = None
        self.output_shape: Optional[Shape] = None
        self.rng: Optional[np.random.Generator] = None
        #: the model clears this on its first layer: no one needs d(input) there
        self.needs_input_grad: bool = True
        self.name: str = self.registry_name

    # --- to implement -------------------------------------------------------------
    def build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        """Allocate and initialise parameters for this per-sample input shape;
        return the per-sample output shape."""
        self.input_shape = tuple(input_shape)
        self.output_shape = self.input_shape
        return self.output_shape

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        """Output of the layer for batch ``x``; with ``training`` it keeps what backward needs."""
        raise NotImplementedError

    def backward(self, dy: np.ndarray) -> Optional[np.ndarray]:
        """Fill ``self.grads`` in place; return d(loss)/d(input), or None when
        ``needs_input_grad`` is False."""
        raise NotImplementedError

    # --- helpers -------------------------------------------------------------------
    def add_param(self, name: str, value: np.ndarray, decay: bool = False) -> None:
        """Create parameter ``name`` (float32) and its gradient; ``decay``: weight decay
        applies."""
        self.params[name] = np.ascontiguousarray(value, dtype=np.float32)
        self.grads[name] = np.zeros_like(self.params[name])
        if decay and name not in self.decay_params:
            self.decay_params = tuple(self.decay_params) + (name,)

    def _pop_saved(self, attr: str) -> Any:
        """What forward (training=True) kept in ``attr``, which is cleared; RuntimeError
        when there is nothing (no training forward since the last backward)."""
        value = getattr(self, attr)
        setattr(self, attr, None)
        if value is None:
            raise RuntimeError(f"{self.name}: backward needs a forward with training=True")
        return value

    def set_grad(self, name: str, value: np.ndarray) -> None:
        """Write the gradient of ``name`` in place (it is a view of the model's flat vector)."""
        np.copyto(self.grads[name], value, casting="same_kind")

    def get_config(self) -> Dict[str, Any]:
        """JSON-serialisable constructor arguments: ``type(self)(**get_config())``
        rebuilds the layer."""
        return dict(self.config)

    def num_params(self) -> int:
        """Number of trainable scalars in this layer."""
        return int(sum(p.size for p in self.params.values()))

    def describe(self) -> str:
        """Short human description for the model summary table."""
        args = ", ".join(f"{k}={v}" for k, v in self.config.items())
        return f"{self.registry_name}({args})"


#: weight initialisation schemes (``init=`` of Conv2D and Dense)
INIT_SCHEMES = ("he", "glorot", "torch")


def init_weights(rng: np.random.Generator, shape: Shape, fan_in: int, fan_out: int,
                 scheme: str) -> np.ndarray:
    """Seeded initial weights.

    * ``he``: normal, std sqrt(2 / fan_in) (keeps ReLU activations' scale in deep nets);
    * ``glorot``: uniform, limit sqrt(6 / (fan_in + fan_out));
    * ``torch``: what ``torch.nn.Conv2d`` / ``nn.Linear`` do by default (kaiming-uniform
      with a = sqrt(5)): uniform, limit 1 / sqrt(fan_in), i.e. std 1 / sqrt(3 fan_in),
      2.45x smaller than He.  Shallow BatchNorm-free models train stably with it at
      SGD learning rates where He init blows up the first steps (see
      benchmarks/results/recipes.md).
    """
    if scheme == "torch":
        limit = 1.0 / np.sqrt(fan_in)
        return rng.uniform(-limit, limit, shape).astype(np.float32)
    if scheme == "he":
        std = np.sqrt(2.0 / fan_in)
        return (rng.standard_normal(shape) * std).astype(np.float32)
    if scheme == "glorot":
        limit = np.sqrt(6.0 / (fan_in + fan_out))
        return rng.uniform(-limit, limit, shape).astype(np.float32)
    from dtnn.errors import ConfigError
    raise ConfigError(f"unknown init scheme '{scheme}' (choose from: {', '.join(INIT_SCHEMES)})")


def init_bias(rng: np.random.Generator, size: int, fan_in: int, scheme: str) -> np.ndarray:
    """Zeros, except for the ``torch`` scheme: uniform, limit 1 / sqrt(fan_in), as torch."""
    if scheme == "torch":
        limit = 1.0 / np.sqrt(fan_in)
        return rng.uniform(-limit, limit, size).astype(np.float32)
    return np.zeros(size, np.float32)
