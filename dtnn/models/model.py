"""A sequential model whose parameters and gradients live in two flat vectors.

Packing every parameter into one contiguous float32 vector (and every gradient into
another, with the same layout) buys three things:

* the optimizer updates all parameters in a handful of vectorised numpy passes;
* the gradient reducer can hand MPI contiguous slices ("buckets") with no copy;
* checkpoints and broadcasts are one array.

The layout is in **reverse layer order**: backward produces the last layer's gradients
first, so the gradients that become ready first sit at the start of the vector and a
bucket that is complete is always a contiguous prefix-adjacent slice.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np

from dtnn.layers.base import LAYERS, Layer, Shape

#: called after layer ``i``'s backward with its gradients final
GradReadyHook = Callable[[int], None]


@dataclass(frozen=True)
class ParamSlot:
    """Where one parameter tensor sits in the flat vectors."""
    layer_index: int
    name: str
    offset: int
    shape: Tuple[int, ...]
    decay: bool

    @property
    def size(self) -> int:
        """Number of scalars in the tensor."""
        return int(np.prod(self.shape, dtype=np.int64))


_PAIR_TYPES: Tuple[type, ...] = ()


def _pair_types() -> Tuple[type, ...]:
    """(BatchNorm, ReLU, MaxPool2D), imported once: the pair checks run for every layer
    of every forward, and an import statement there costs more than the check."""
    global _PAIR_TYPES
    if not _PAIR_TYPES:
        from dtnn.layers.activation import ReLU
        from dtnn.layers.batchnorm import BatchNorm
        from dtnn.layers.pooling import MaxPool2D
        _PAIR_TYPES = (BatchNorm, ReLU, MaxPool2D)
    return _PAIR_TYPES


def _bn_relu_pair(a: Layer, b: Layer) -> bool:
    bn, relu, _ = _pair_types()
    return type(a) is bn and type(b) is relu


def _relu_maxpool_pair(a: Layer, b: Layer) -> bool:
    _, relu, pool = _pair_types()
    return type(a) is relu and type(b) is pool


def _bn_relu_pool2_triple(layers: Sequence[Layer], i: int, x: np.ndarray) -> bool:
    """layers[i:i+3] are batchnorm, relu, maxpool2d with a 2x2 / stride-2 unpadded window
    on an image of at least 2x2: what BatchNorm.forward_relu_pool runs."""
    if i + 2 >= len(layers) or not _bn_relu_pair(layers[i], layers[i + 1]):
        return False
    pool = layers[i + 2]
    return (type(pool) is _pair_types()[2] and pool.kernel_size == (2, 2)
            and pool.stride == (2, 2) and pool.padding == (0, 0)
            and x.ndim == 4 and x.shape[2] >= 2 and x.shape[3] >= 2)


class Model:
    """A sequence of layers with all parameters in ``flat_params`` and all gradients in
    ``flat_grads`` (see the module docstring); build it with ``build(seed)``.

    In training, a ``batchnorm`` followed by a ``relu`` runs fused (``fuse_bn_relu``):
    BatchNorm's statistics, then its affine map and the ReLU in one pass, and one
    backward for both (csrc/bnact.c) -- the same results as the two layers one after
    the other, with one pass over the activation fewer each way and no pre-ReLU
    temporary.  Code that calls the layers one by one gets them unfused.

    A ``batchnorm``, ``relu``, ``maxpool2d(2)`` triple runs as one (``fuse_bn_relu_pool``,
    in training): the statistics, then the affine map, ReLU and the 2x2 pool in one pass
    that writes only the pooled map; its backward builds the gated gradient a row at a
    time in cache instead of the pool's full-size gradient (csrc/bnact.c).  Same bits
    as the three layers.

    A ``relu`` followed by a ``maxpool2d`` runs pool first (``pool_before_relu``):
    max(relu(window)) = relu(max(window)), and the gradient reaches the same input with
    the same value (the window's first maximum, where it is positive; zero otherwise),
    so the outputs and gradients are the same bits, with the ReLU's two passes on the
    pooled map (a quarter of the size for 2x2 pooling) instead of the convolution's.
    """

    #: run batchnorm + relu pairs fused in training (False: layer by layer)
    fuse_bn_relu: bool = True
    _fused_bn_relu: List[int] = []
    #: run batchnorm + relu + maxpool2d(2) triples fused in training (needs fuse_bn_relu)
    fuse_bn_relu_pool: bool = True
    _fused_bn_relu_pool: List[int] = []
    #: run relu + maxpool pairs as maxpool, then relu (False: layer by layer)
    pool_before_relu: bool = True
    _pooled_first: List[int] = []
    def __init__(self, layers: Sequence[Layer], input_shape: Shape, name: str = "model",
                 arch: Optional[Dict[str, Any]] = None):
        self.layers: List[Layer] = list(layers)
        self.input_shape: Shape = tuple(int(d) for d in input_shape)
        self.name = name
        #: how the model was made ({"name": builder, "options": {...}}), if by a builder
        self.arch = arch or {}
        self._flat_params = np.zeros(0, np.float32)
        self.flat_grads = np.zeros(0, np.float32)
        self.decay_mask = np.zeros(0, np.float32)
        self.slots: List[ParamSlot] = []
        self.output_shape: Shape = self.input_shape
        self.built = False
        #: called after each layer's backward when ``backward`` gets no hook of its own
        #: (set by ``dtnn.DistributedOptimizer`` so a plain ``backward`` exchanges)
        self.grad_hook: Optional[GradReadyHook] = None
        #: called with ``j`` before a forward pass runs layers ``.. j`` (set by
        #: ``dtnn.DistributedOptimizer`` with ``dist.defer_update``: the parameters of
        #: those layers get the previous step's update first)
        self.forward_hook: Optional[Callable[[int], None]] = None
        #: called whenever ``flat_params`` is read (state_dict, load_state_dict, a
        #: user's look between steps): completes a deferred update first
        self.flush_hook: Optional[Callable[[], None]] = None

    @property
    def flat_params(self) -> np.ndarray:
        """All parameters, one float32 vector (layers hold views into it).  With a
        deferred update pending (``dist.defer_update``) it is completed first, so a
        reader between steps sees the updated values (a layer's ``params`` views do
        not trigger this: call ``DistributedOptimizer.flush()`` before reading them)."""
        if self.flush_hook is not None:
            self.flush_hook()
        return self._flat_params

    @flat_params.setter
    def flat_params(self, value: np.ndarray) -> None:
        self._flat_params = value

    # --- construction ----------------------------------------------------------------
    def build(self, seed: int = 0) -> "Model":
        """Initialise every layer (seeded) and pack parameters into flat vectors."""
        root = np.random.SeedSequence(seed)
        children = root.spawn(len(self.layers))
        shape = self.input_shape
        for i, (layer, ss) in enumerate(zip(self.layers, children)):
            rng = np.random.default_rng(ss)
            layer.name = f"{i}:{layer.registry_name}"
            shape = tuple(layer.build(shape, rng))
            layer.rng = rng
        self.output_shape = shape
        if self.layers:
            self.layers[0].needs_input_grad = False
        self._pack_parameters()
        self.built = True
        return self

    def _pack_parameters(self) -> None:
        slots, offset = [], 0
        for i in reversed(range(len(self.layers))):
            layer = self.layers[i]
            for name, p in layer.params.items():
                slots.append(ParamSlot(i, name, offset, tuple(p.shape), name in layer.decay_params))
                offset += p.size
        self._flat_params = np.zeros(offset, np.float32)
        self.flat_grads = np.zeros(offset, np.float32)
        self.decay_mask = np.zeros(offset, np.float32)
        for s in slots:
            layer = self.layers[s.layer_index]
            p_view = self._flat_params[s.offset:s.offset + s.size].reshape(s.shape)
            g_view = self.flat_grads[s.offset:s.offset + s.size].reshape(s.shape)
            p_view[...] = layer.params[s.name]
            layer.params[s.name] = p_view
            layer.grads[s.name] = g_view
            self.decay_mask[s.offset:s.offset + s.size] = 1.0 if s.decay else 0.0
        self.slots = slots

    # --- computation -------------------------------------------------------------------
    def forward(self, x: np.ndarray, training: bool = False) -> np.ndarray:
        """Run every layer on batch ``x``; ``training`` keeps what ``backward`` needs (and uses
        batch statistics, dropout)."""
        layers, fused, pooled_first, fused3 = self.layers, [], [], []
        i, n = 0, len(layers)
        hook = self.forward_hook
        while i < n:
            layer = layers[i]
            if hook is not None:   # layers i..i+2 at most run next (fused groups)
                hook(min(i + 2, n - 1))
            if (training and self.fuse_bn_relu and self.fuse_bn_relu_pool
                    and _bn_relu_pool2_triple(layers, i, x) and layer.can_fuse_relu(x, training)):
                x = layer.forward_relu_pool(x)
                layers[i + 1]._kept = None
                layers[i + 2]._argmax = None
                fused3.append(i)
                i += 3
                continue
            if (training and self.fuse_bn_relu and i + 1 < n and _bn_relu_pair(layer, layers[i + 1])
                    and layer.can_fuse_relu(x, training)):
                x = layer.forward_relu(x)
                layers[i + 1]._kept = None
                fused.append(i)
                i += 2
                continue
            if (self.pool_before_relu and i + 1 < n and _relu_maxpool_pair(layer, layers[i + 1])
                    and (layer.needs_input_grad or not training)):
                x = layer.forward(layers[i + 1].forward(x, training), training)
                pooled_first.append(i)
                i += 2
                continue
            x = layer.forward(x, training)
            i += 1
        self._fused_bn_relu = fused
        self._fused_bn_relu_pool = fused3
        self._pooled_first = pooled_first if training else []
        return x

    def backward(self, dy: np.ndarray, on_grads_ready: Optional[GradReadyHook] = None) -> None:
        """Back-propagate ``dy`` (d loss / d output); gradients land in ``flat_grads``.

        ``on_grads_ready(i)`` is called as soon as layer ``i``'s gradients are final,
        so a reducer can start communicating them while earlier layers still compute;
        without one, ``self.grad_hook`` (if set) is called.
        """
        if on_grads_ready is None:
            on_grads_ready = getattr(self, "grad_hook", None)
        fused, self._fused_bn_relu = set(self._fused_bn_relu), []
        fused3, self._fused_bn_relu_pool = set(self._fused_bn_relu_pool), []
        pooled_first, self._pooled_first = set(self._pooled_first), []
        i = len(self.layers) - 1
        while i >= 0:
            if i - 2 in fused3:     # batchnorm i-2 + relu i-1 + maxpool i, fused by forward
                dy = self.layers[i - 2].backward_relu_pool(dy)
                if on_grads_ready is not None:
                    on_grads_ready(i)
                    on_grads_ready(i - 1)
                    on_grads_ready(i - 2)
                i -= 3
                continue
            if i - 1 in fused:      # batchnorm i-1 + relu i, run fused by forward
                dy = self.layers[i - 1].backward_relu(dy)
                if on_grads_ready is not None:
                    on_grads_ready(i)
                    on_grads_ready(i - 1)
                i -= 2
                continue
            if i - 1 in pooled_first:   # relu i-1 + maxpool i, run pool first by forward
                dy = self.layers[i].backward(self.layers[i - 1].backward(dy))
                if on_grads_ready is not None:
                    on_grads_ready(i)
                    on_grads_ready(i - 1)
                i -= 2
                continue
            dy = self.layers[i].backward(dy)
            if on_grads_ready is not None:
                on_grads_ready(i)
            i -= 1

    def predict(self, x: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Logits for ``x`` in inference mode, in batches."""
        outs = [self.forward(x[i:i + batch_size], training=False)
                for i in range(0, len(x), batch_size)]
        return np.concatenate(outs) if outs else np.zeros((0,) + self.output_shape, np.float32)

    # --- introspection ---------------------------------------------------------------
    def num_params(self) -> int:
        """Number of trainable scalars."""
        return int(self._flat_params.size)

    def layer_param_range(self, i: int) -> Tuple[int, int]:
        """[start, stop) of layer i's parameters in the flat vectors (empty if none)."""
        offs = [(s.offset, s.offset + s.size) for s in self.slots if s.layer_index == i]
        if not offs:
            return (0, 0)
        return (min(o for o, _ in offs), max(e for _, e in offs))

    def summary(self) -> str:
        """The model as a table: layers, output shapes, parameter counts."""
        rows = [("#", "layer", "output shape", "params")]
        for i, layer in enumerate(self.layers):
            rows.append((str(i), layer.describe(), str(tuple(layer.output_shape or ())),
                         f"{layer.num_params():,}"))
        widths = [max(len(r[c]) for r in rows) for c in range(4)]
        line = "-" * (sum(widths) + 6)
        fmt = lambda r: "  ".join(  # noqa: E731
            r[c].rjust(widths[c]) if c in (0, 3) else r[c].ljust(widths[c]) for c in range(4))
        out = [f"Model {self.name}: input {self.input_shape}", line, fmt(rows[0]), line]
        out += [fmt(r) for r in rows[1:]]
        out += [line, f"total parameters: {self.num_params():,}"]
        return "\n".join(out)

    # --- state -------------------------------------------------------------------------
    def get_config(self) -> Dict[str, Any]:
        """Everything needed to rebuild the architecture (no weights); JSON-able."""
        return {
            "name": self.name,
            "arch": self.arch,
            "input_shape": list(self.input_shape),
            "layers": [{"type": l.registry_name, "config": l.get_config()} for l in self.layers],
        }

    def config_json(self) -> str:
        """``get_config()`` as canonical JSON (same text on every rank for the same model)."""
        return json.dumps(self.get_config(), sort_keys=True)

    @classmethod
    def from_config(cls, config: Dict[str, Any], seed: int = 0) -> "Model":
        import dtnn.layers  # noqa: F401  -- registers every layer type
        layers = [LAYERS.get(spec["type"])(**spec["config"]) for spec in config["layers"]]
        return cls(layers, tuple(config["input_shape"]), name=config.get("name", "model"),
                   arch=config.get("arch")).build(seed)

    def state_dict(self) -> Dict[str, Any]:
        """Copies of everything a trained model holds: ``params`` (the flat vector),
        ``buffers`` (BN running statistics) and ``rng`` (dropout streams)."""
        return {"params": self.flat_params.copy(),
                "buffers": {k: v.copy() for k, v in self.buffers().items()},
                "rng": self.rng_states()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore ``state_dict()`` into this (built, same-architecture) model."""
        params = np.asarray(state["params"], np.float32)
        if params.shape != self.flat_params.shape:
            raise ValueError(f"load_state_dict: {params.size} parameters in the state, "
                             f"{self.flat_params.size} in the model")
        np.copyto(self.flat_params, params)
        mine = self.buffers()
        if set(state.get("buffers", {})) != set(mine):
            raise ValueError("load_state_dict: the buffers differ from this model's "
                             f"({sorted(state.get('buffers', {}))} vs {sorted(mine)})")
        self.load_buffers(state["buffers"])
        self.set_rng_states(state.get("rng", {}))

    def buffers(self) -> Dict[str, np.ndarray]:
        """Non-trainable state (BN running stats), keyed '<layer>/<name>'."""
        return {f"{i}/{k}": v for i, l in enumerate(self.layers) for k, v in l.buffers.items()}

    def load_buffers(self, buffers: Dict[str, np.ndarray]) -> None:
        """Copy ``buffers()``-keyed arrays into this model's buffers."""
        for key, value in buffers.items():
            i, name = key.split("/", 1)
            np.copyto(self.layers[int(i)].buffers[name], value)

    def rng_states(self) -> Dict[str, Any]:
        """Bit-generator states of layers that draw random numbers (dropout)."""
        return {str(i): l.rng.bit_generator.state for i, l in enumerate(self.layers)
                if l.rng is not None and getattr(l, "uses_rng", False)}

    def set_rng_states(self, states: Dict[str, Any]) -> None:
        """Restore ``rng_states()``."""
        for i, state in states.items():
            self.layers[int(i)].rng.bit_generator.state = state

    def reseed_rngs(self, seed: int, stream: int) -> None:
        """Give random layers a fresh stream (e.g. one per MPI rank for dropout)."""
        for i, l in enumerate(self.layers):
            if getattr(l, "uses_rng", False):
                l.rng = np.random.default_rng([seed, stream, i])
