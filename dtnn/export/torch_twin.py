"""The PyTorch twin of a dtnn model: the same layers, the same weights, the same maths.

``torch_twin(model)`` returns an ``nn.Sequential`` whose modules mirror ``model.layers``
one to one (so ``twin[i]`` is layer ``i``), with every parameter and buffer copied
(pruned models too: shapes come from the built layers, not from the builder). It is the
reference for tests (Taylor importance against torch autograd), the peer in benchmarks
(``dtnn bench infer``, the DDP comparison) and the path to other tools (torch-pruning).

Converters live in a registry keyed by the dtnn layer name, so a new layer type adds
its twin with ``@TWINS.register("name")`` next to it; a layer without one is a
one-line ``ConfigError``. ``copy_back(twin, model)`` writes the twin's weights into the
dtnn model (after training or pruning on the torch side).
"""
from __future__ import annotations

import dtnn  # noqa: F401  -- first: it sets OpenBLAS's spin time before numpy loads it
import numpy as np
import torch
from torch import nn

from dtnn.errors import ConfigError
from dtnn.registry import Registry

#: dtnn layer name -> function(layer) -> nn.Module (weights copied)
TWINS = Registry("torch twin")


def _pair(v):
    return tuple(int(a) for a in v) if isinstance(v, (list, tuple)) else (int(v), int(v))


def _tensor(a: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(a, dtype=np.float32, copy=True))


def torch_twin(model) -> nn.Sequential:
    """An ``nn.Sequential`` mirroring the built dtnn ``model``, weights and buffers
    copied. Like any new torch module it is in training mode: call ``.eval()`` for
    inference (BatchNorm running statistics, no dropout)."""
    if not getattr(model, "built", False):
        raise ValueError("torch_twin: the model is not built")
    modules = []
    for i, layer in enumerate(model.layers):
        name = layer.registry_name
        if name not in TWINS:
            raise ConfigError(f"layer {i} ({name}) has no torch twin; supported: "
                              f"{', '.join(TWINS.names())}")
        modules.append(TWINS.get(name)(layer))
    return nn.Sequential(*modules)


def copy_back(twin: nn.Sequential, model) -> None:
    """Copy the twin's parameters and buffers into ``model`` (shapes must match)."""
    for layer, module in zip(model.layers, twin):
        for name, (src, transpose) in _param_map(layer, module).items():
            value = src.detach().cpu().numpy()
            value = value.T if transpose else value
            target = layer.params[name] if name in layer.params else layer.buffers[name]
            np.copyto(target, value.reshape(target.shape))


def _param_map(layer, module):
    """dtnn name -> (torch tensor, transposed?) for one layer/module pair."""
    kind = layer.registry_name
    if kind == "conv2d":
        out = {"weight": (module.weight, False)}
        if layer.use_bias:
            out["bias"] = (module.bias, False)
        return out
    if kind == "dense":
        out = {"weight": (module.weight, True)}
        if layer.use_bias:
            out["bias"] = (module.bias, False)
        return out
    if kind == "batchnorm":
        return {"gamma": (module.weight, False), "beta": (module.bias, False),
                "running_mean": (module.running_mean, False),
                "running_var": (module.running_var, False)}
    if kind == "prelu":
        return {"alpha": (module.weight, False)}
    return {}


@TWINS.register("conv2d")
def _conv(layer) -> nn.Module:
    C = layer.input_shape[0]
    m = nn.Conv2d(C, layer.out_channels, layer.kernel_size, layer.stride, layer.padding,
                  layer.dilation, layer.groups, layer.use_bias)
    with torch.no_grad():
        m.weight.copy_(_tensor(layer.params["weight"]))
        if layer.use_bias:
            m.bias.copy_(_tensor(layer.params["bias"]))
    return m


@TWINS.register("dense")
def _dense(layer) -> nn.Module:
    w = layer.params["weight"]        # (F, units): dtnn stores input-major
    m = nn.Linear(w.shape[0], w.shape[1], bias=layer.use_bias)
    with torch.no_grad():
        m.weight.copy_(_tensor(w.T))
        if layer.use_bias:
            m.bias.copy_(_tensor(layer.params["bias"]))
    return m


@TWINS.register("batchnorm")
def _batchnorm(layer) -> nn.Module:
    C = layer.input_shape[0]
    cls = nn.BatchNorm2d if len(layer.input_shape) == 3 else nn.BatchNorm1d
    m = cls(C, eps=layer.eps, momentum=layer.momentum)
    with torch.no_grad():
        m.weight.copy_(_tensor(layer.params["gamma"]))
        m.bias.copy_(_tensor(layer.params["beta"]))
        m.running_mean.copy_(_tensor(layer.buffers["running_mean"]))
        m.running_var.copy_(_tensor(layer.buffers["running_var"]))
    return m


@TWINS.register("prelu")
def _prelu(layer) -> nn.Module:
    alpha = layer.params["alpha"]
    m = nn.PReLU(alpha.size)
    with torch.no_grad():
        m.weight.copy_(_tensor(alpha))
    return m


@TWINS.register("relu")
def _relu(layer) -> nn.Module:
    return nn.ReLU()


@TWINS.register("dropout")
def _dropout(layer) -> nn.Module:
    return nn.Dropout(layer.rate)


@TWINS.register("flatten")
def _flatten(layer) -> nn.Module:
    return nn.Flatten()


@TWINS.register("maxpool2d")
def _maxpool(layer) -> nn.Module:
    return nn.MaxPool2d(layer.kernel_size, layer.stride, layer.padding)


@TWINS.register("avgpool2d")
def _avgpool(layer) -> nn.Module:
    return nn.AvgPool2d(layer.kernel_size, layer.stride, layer.padding, count_include_pad=True)


class GlobalPool(nn.Module):
    """(N, C, H, W) -> (N, C) by mean or max over the positions."""

    def __init__(self, mode: str):
        super().__init__()
        self.mode = mode

    def forward(self, x):
        flat = x.flatten(2)
        return flat.mean(2) if self.mode == "avg" else flat.amax(2)


@TWINS.register("globalavgpool")
def _gap(layer) -> nn.Module:
    return GlobalPool("avg")


@TWINS.register("globalmaxpool")
def _gmp(layer) -> nn.Module:
    return GlobalPool("max")


class KMaxPool(nn.Module):
    """Keep the k largest values of every flattened feature map, in their original order."""

    def __init__(self, layer):
        super().__init__()
        self.k_for = layer.k_for

    def forward(self, x):
        flat = x.flatten(2)
        k = self.k_for(flat.shape[2])
        idx = flat.topk(k, dim=2).indices.sort(dim=2).values
        return flat.gather(2, idx)


@TWINS.register("kmaxpool")
def _kmax(layer) -> nn.Module:
    return KMaxPool(layer)


from dtnn.export import torch_twin_blocks as _blocks  # noqa: E402,F401  (relu6, residual, concat)
