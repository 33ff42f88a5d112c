"""Build the PyTorch twin of a dtnn model (same layers, same weights) for benchmarks.

Used by the dtnn-vs-PyTorch step-time benchmark; weights are copied so both sides do
exactly the same arithmetic on the same data.
"""
from __future__ import annotations

import dtnn  # noqa: F401  -- first: it sets OpenBLAS's spin time before numpy loads it
import numpy as np
import torch
from torch import nn


def _pair(v):
    return tuple(v) if isinstance(v, (list, tuple)) else (v, v)


def torch_twin(model) -> nn.Sequential:
    """nn.Sequential mirroring ``model`` (a built dtnn Model), weights copied."""
    modules = []
    for layer in model.layers:
        kind, cfg = layer.registry_name, layer.config
        if kind == "conv2d":
            C = layer.input_shape[0]
            pad = layer.padding if hasattr(layer, "padding") else _pair(cfg["padding"])
            m = nn.Conv2d(C, cfg["out_channels"], _pair(cfg["kernel_size"]), _pair(cfg["stride"]),
                          tuple(pad), _pair(cfg["dilation"]), cfg["groups"], cfg["bias"])
            m.weight.data = torch.from_numpy(layer.params["weight"].copy())
            if cfg["bias"]:
                m.bias.data = torch.from_numpy(layer.params["bias"].copy())
        elif kind == "dense":
            w = layer.params["weight"]
            m = nn.Linear(w.shape[0], w.shape[1], bias=cfg["bias"])
            m.weight.data = torch.from_numpy(np.ascontiguousarray(w.T))
            if cfg["bias"]:
                m.bias.data = torch.from_numpy(layer.params["bias"].copy())
        elif kind == "relu":
            m = nn.ReLU()
        elif kind == "maxpool2d":
            m = nn.MaxPool2d(cfg["kernel_size"], cfg["stride"], cfg["padding"])
        elif kind == "flatten":
            m = nn.Flatten()
        elif kind == "batchnorm":
            n = layer.input_shape[0]
            m = nn.BatchNorm2d(n) if len(layer.input_shape) == 3 else nn.BatchNorm1d(n)
        elif kind == "prelu":
            m = nn.PReLU(layer.input_shape[0])
        elif kind == "dropout":
            m = nn.Dropout(cfg["rate"])
        else:
            raise ValueError(f"no torch twin for layer '{kind}'")
        modules.append(m)
    return nn.Sequential(*modules)
