"""``pretune``: settle every BestOf convolution of a model before real work starts.

Runs training steps (forward + backward, no weight updates) and then inference
forwards on random data of the model's input shape until every convolution's choice
has settled (or ``max_steps``).  The decisions go to the tuning cache when it is on
(``dtnn.tune.configure``), so later runs with ``conv_algorithm = "bestof"`` start at
full speed.  Under MPI every rank calls it (timings are reduced over each node).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

import numpy as np


def tuned_convolutions(model) -> List:
    """The model's convolution layers whose algorithm is a tuner (blocks included)."""
    layers = []
    for layer in model.layers:
        layers.append(layer)
        if hasattr(layer, "children"):
            layers.extend(child for _, _, child in layer.children())
    return [l for l in layers if getattr(l, "algorithm", None) is not None
            and hasattr(l.algorithm, "key")]


def pretune(model, batch_size: int, eval_batch_size: Optional[int] = None,
            max_steps: int = 200, seed: int = 0) -> Dict[str, Tuple[bool, int]]:
    """Tune ``model``'s BestOf convolutions for training at ``batch_size`` and, if
    given, inference at ``eval_batch_size``.  Returns, per mode ("training",
    "inference"), ``(settled, steps run)``."""
    convs = tuned_convolutions(model)
    rng = np.random.default_rng(seed)

    def settled(n: int, training: bool) -> bool:
        # collective-free: every rank runs the same steps and decisions come from
        # node-reduced statistics, so all ranks settle at the same step
        return all(l.algorithm.tuner(training).settled(l.algorithm.key(l.geometry(n), training))
                   for l in convs)

    modes = [("training", True, batch_size)]
    if eval_batch_size:
        modes.append(("inference", False, eval_batch_size))
    result: Dict[str, Tuple[bool, int]] = {}
    for name, training, n in modes:
        x = rng.standard_normal((n,) + tuple(model.input_shape)).astype(np.float32)
        steps = 0
        while steps < max_steps and not (steps and settled(n, training)):
            out = model.forward(x, training=training)
            if training:
                model.backward(np.ones_like(out) / out.size)
            steps += 1
        result[name] = (settled(n, training), steps)
    return result
