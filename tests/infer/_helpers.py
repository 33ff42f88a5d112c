"""Helpers of the inference tests (no torch import: used in fresh processes too)."""
import numpy as np


def _layers(model):
    for layer in model.layers:
        yield layer
        if hasattr(layer, "children"):
            for _, _, child in layer.children():
                yield child


def trained_like(model, seed=1):
    """BatchNorm statistics and affine parameters away from their initial values (so
    folding them is really tested), PReLU slopes of both signs."""
    rng = np.random.default_rng(seed)
    for layer in _layers(model):
        if layer.registry_name == "batchnorm":
            C = layer.buffers["running_mean"].shape[0]
            layer.buffers["running_mean"][...] = rng.standard_normal(C) * 0.3
            layer.buffers["running_var"][...] = rng.uniform(0.3, 2.0, C)
            layer.params["gamma"][...] = rng.uniform(0.5, 1.5, C)
            layer.params["beta"][...] = rng.standard_normal(C) * 0.2
        elif layer.registry_name == "prelu":
            a = layer.params["alpha"]
            a[...] = rng.uniform(-0.3, 0.6, a.shape)
    return model
