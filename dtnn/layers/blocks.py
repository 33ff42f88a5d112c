"""Blocks: layers made of branches of layers, so a sequential ``Model`` can hold
residual (ResNet, MobileNet V2) and concatenation (Inception, DenseNet) topologies.

``Residual(body, shortcut=None)``  ``y = body(x) + shortcut(x)`` (identity shortcut
                                   when None, e.g. a 1x1 conv + BN projection otherwise)
``Concat([branch, ...])``          ``y = concat(branch(x) ...)`` along channels (axis 1);
                                   an empty branch passes ``x`` through

A branch is a list of layers run in order.  To the model a block is one layer: its
parameters, gradients and buffers are the children's, routed under the names
``"<branch>.<index>.<name>"`` (e.g. ``"0.3.weight"``), so ``Model.build`` packs them
into the flat vectors like any other layer's (the children then read and write views
of the flat vectors), checkpoints store them under those names, and the gradient
reducer sees the block's gradients become ready when its backward returns.

Random layers (dropout) inside a block are refused: their RNG streams are per model
layer; put dropout between blocks.
"""
from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from dtnn.errors import ConfigError
from dtnn.layers.base import LAYERS, Layer, Shape


class _Routed(MutableMapping):
    """A block's ``params``/``grads``/``buffers``: a live view of its children's."""

    def __init__(self, block: "_Block", attr: str):
        self._block, self._attr = block, attr

    def _split(self, key: str) -> Tuple[Dict[str, np.ndarray], str]:
        try:
            b, i, name = key.split(".", 2)
            return getattr(self._block.branches[int(b)][int(i)], self._attr), name
        except (ValueError, IndexError):
            raise KeyError(key) from None

    def __getitem__(self, key: str) -> np.ndarray:
        table, name = self._split(key)
        return table[name]

    def __setitem__(self, key: str, value: np.ndarray) -> None:
        table, name = self._split(key)
        if name not in table:
            raise KeyError(key)
        table[name] = value

    def __delitem__(self, key: str) -> None:
        raise TypeError("a block's parameters belong to its layers")

    def __iter__(self) -> Iterator[str]:
        for b, i, layer in self._block.children():
            for name in getattr(layer, self._attr):
                yield f"{b}.{i}.{name}"

    def __len__(self) -> int:
        return sum(1 for _ in self)


def _as_layers(spec: Optional[Sequence[Any]], where: str) -> List[Layer]:
    """Layers from Layer objects or their ``{"type", "config"}`` dicts (checkpoints)."""
    out = []
    for item in spec or []:
        if isinstance(item, Layer):
            layer = item
        elif isinstance(item, dict) and "type" in item:
            import dtnn.layers  # noqa: F401  (registers every layer type)
            layer = LAYERS.get(item["type"])(**item.get("config", {}))
        else:
            raise ConfigError(f"{where}: expected layers, got {item!r}")
        if getattr(layer, "uses_rng", False):
            raise ConfigError(f"{where}: {layer.registry_name} draws random numbers and "
                              "cannot sit inside a block; put it between blocks")
        out.append(layer)
    return out


def _specs(layers: Sequence[Layer]) -> List[Dict[str, Any]]:
    return [{"type": l.registry_name, "config": l.get_config()} for l in layers]


class _Block(Layer):
    """Branches of layers whose outputs are merged (``_merge``/``_split_grad``)."""

    def __init__(self, branches: Sequence[Sequence[Any]], **config: Any):
        super().__init__(**config)
        self.branches: List[List[Layer]] = [
            _as_layers(br, f"{self.registry_name} branch {b}") for b, br in enumerate(branches)]
        self.params = _Routed(self, "params")
        self.grads = _Routed(self, "grads")
        self.buffers = _Routed(self, "buffers")
        self._outs: List[Shape] = []

    def children(self) -> Iterator[Tuple[int, int, Layer]]:
        for b, branch in enumerate(self.branches):
            for i, layer in enumerate(branch):
                yield b, i, layer

    @property
    def decay_params(self) -> Tuple[str, ...]:  # type: ignore[override]
        return tuple(f"{b}.{i}.{n}" for b, i, l in self.children() for n in l.decay_params)

    def build(self, input_shape: Shape, rng: np.random.Generator) -> Shape:
        self.input_shape = tuple(int(d) for d in input_shape)
        seeds = iter(np.random.SeedSequence(int(rng.integers(2 ** 63))).spawn(
            sum(len(br) for br in self.branches)))
        self._outs = []
        for b, branch in enumerate(self.branches):
            shape = self.input_shape
            for i, layer in enumerate(branch):
                layer.name = f"{self.name}.{b}.{i}:{layer.registry_name}"
                layer.rng = np.random.default_rng(next(seeds))
                shape = tuple(int(d) for d in layer.build(shape, layer.rng))
            self._outs.append(shape)
        self.output_shape = self._merged_shape(self._outs)
        return self.output_shape

    def _branch_out(self, b: int) -> Shape:
        return self._outs[b]

    def forward(self, x: np.ndarray, training: bool) -> np.ndarray:
        outs = []
        for branch in self.branches:
            h = x
            for layer in branch:
                h = layer.forward(h, training)
            outs.append(h)
        return self._merge(outs)

    def backward(self, dy: np.ndarray) -> Optional[np.ndarray]:
        dx = None
        for branch, g in zip(self.branches, self._split_grad(dy)):
            if branch:
                branch[0].needs_input_grad = self.needs_input_grad
            for layer in reversed(branch):
                g = layer.backward(g)
            if self.needs_input_grad:
                g = np.asarray(g, np.float32)
                dx = g.copy() if dx is None else np.add(dx, g, out=dx)
        return dx

    def get_config(self) -> Dict[str, Any]:
        raise NotImplementedError

    def describe(self) -> str:
        parts = [">".join(l.registry_name for l in br) or "identity" for br in self.branches]
        return f"{self.registry_name}[{' | '.join(parts)}]"

    # --- merge rules ------------------------------------------------------------------
    def _merged_shape(self, outs: List[Shape]) -> Shape:
        raise NotImplementedError

    def _merge(self, outs: List[np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def _split_grad(self, dy: np.ndarray) -> List[np.ndarray]:
        raise NotImplementedError


@LAYERS.register("residual")
class Residual(_Block):
    """``y = body(x) + shortcut(x)``; ``shortcut=None`` is the identity."""

    def __init__(self, body: Sequence[Any], shortcut: Optional[Sequence[Any]] = None):
        super().__init__([body, shortcut or []])
        if not self.branches[0]:
            raise ConfigError("residual: the body needs at least one layer")

    def get_config(self) -> Dict[str, Any]:
        return {"body": _specs(self.branches[0]),
                "shortcut": _specs(self.branches[1]) if self.branches[1] else None}

    def _merged_shape(self, outs: List[Shape]) -> Shape:
        if outs[0] != outs[1]:
            raise ConfigError(f"residual: the body gives {outs[0]} but the shortcut gives "
                              f"{outs[1]} (add a projection shortcut, e.g. a 1x1 conv2d)")
        return outs[0]

    def _merge(self, outs: List[np.ndarray]) -> np.ndarray:
        return np.add(outs[0], outs[1], dtype=np.float32)

    def _split_grad(self, dy: np.ndarray) -> List[np.ndarray]:
        return [dy, dy]


@LAYERS.register("concat")
class Concat(_Block):
    """Branch outputs concatenated along axis 1 (channels, or features of (N, F))."""

    def __init__(self, branches: Sequence[Sequence[Any]]):
        if len(branches) < 2:
            raise ConfigError("concat: needs at least two branches")
        super().__init__(branches)

    def get_config(self) -> Dict[str, Any]:
        return {"branches": [_specs(br) for br in self.branches]}

    def _merged_shape(self, outs: List[Shape]) -> Shape:
        rest = {o[1:] for o in outs}
        if len(rest) != 1:
            raise ConfigError(f"concat: branch outputs {outs} differ beyond axis 1")
        return (sum(o[0] for o in outs),) + outs[0][1:]

    def _merge(self, outs: List[np.ndarray]) -> np.ndarray:
        return np.concatenate(outs, axis=1).astype(np.float32, copy=False)

    def _split_grad(self, dy: np.ndarray) -> List[np.ndarray]:
        cuts = np.cumsum([self._branch_out(b)[0] for b in range(len(self.branches))])[:-1]
        return [np.ascontiguousarray(g) for g in np.split(dy, cuts, axis=1)]
