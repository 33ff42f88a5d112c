"""Size and compute of a model: what pruning is meant to shrink."""
from __future__ import annotations

import time
from typing import Any, Dict

import numpy as np


def layer_flops(layer) -> int:
    """Floating-point operations of one sample's forward pass (2 per multiply-add) in
    the convolutions and dense layers (everything else is a rounding error)."""
    name = layer.registry_name
    if name == "conv2d":
        K, Ho, Wo = layer.output_shape
        C = layer.input_shape[0]
        R, S = layer.kernel_size
        return 2 * K * (C // layer.groups) * R * S * Ho * Wo
    if name == "dense":
        return 2 * layer.input_shape[0] * layer.units
    return 0


def model_cost(model) -> Dict[str, Any]:
    """Parameters, their float32 size in MB, forward FLOPs per sample, and the conv
    feature maps / hidden dense units per layer."""
    convs = {str(i): l.out_channels for i, l in enumerate(model.layers)
             if l.registry_name == "conv2d"}
    dense_idx = [i for i, l in enumerate(model.layers) if l.registry_name == "dense"]
    hidden = {str(i): model.layers[i].units for i in dense_idx[:-1]}
    params = model.num_params()
    return {"params": int(params), "mb": params * 4 / 1e6,
            "flops": int(sum(layer_flops(l) for l in model.layers)),
            "maps": int(sum(convs.values())), "dense_units": int(sum(hidden.values())),
            "maps_per_layer": convs, "units_per_layer": hidden}


def settle_tuning(fn, x, cap: int = 400) -> int:
    """Call ``fn(x)`` (an inference forward pass) until BestOf's inference tuner has
    decided for every shape (at most ``cap`` calls), so that timings that follow measure
    the chosen variants, not the tuning; returns the number of calls."""
    import dtnn.tune as tune
    from dtnn.conv.bestof import TUNER_INFER
    calls = 0
    while calls < cap:
        fn(x)
        calls += 1
        bo = tune.tuners().get(TUNER_INFER)
        if bo is None or all(st.settled for st in bo._states.values()):
            break
    return calls


def batch1_latency_ms(model, reps: int = 20, warmup: int = 3, fused: bool = True) -> float:
    """Median wall time of one single-sample inference, in ms: through the fused
    inference plan (``dtnn.infer.InferenceModel``, as ``dtnn bench infer``'s dtnn row),
    or with ``fused=False`` layer by layer (``model.forward``) once BestOf's inference
    tuning for this shape has settled."""
    x = np.random.default_rng(0).standard_normal((1,) + tuple(model.input_shape)
                                                ).astype(np.float32)
    if fused:
        from dtnn.infer import InferenceModel
        fn = InferenceModel(model)
    else:
        def fn(v):
            return model.forward(v, training=False)
        settle_tuning(fn, x)
    for _ in range(warmup):
        fn(x)
    times = []
    for _ in range(max(1, reps)):
        t0 = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - t0)
    return float(np.median(times) * 1e3)
