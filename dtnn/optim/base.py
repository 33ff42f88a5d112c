"""Optimizers work on the model's flat parameter/gradient vectors (see dtnn.models.model).

An optimizer is built with the flat ``params`` and ``grads`` arrays (updated in
place) and the per-element ``decay_mask`` (1.0 where weight decay applies: weights,
0.0 for biases and BatchNorm parameters).  The learning rate is set from outside
each step (``opt.lr = schedule.lr_at(step)``), so schedules stay stateless.
"""
from __future__ import annotations

from typing import Any, Dict

import numpy as np

from dtnn.registry import Registry

OPTIMIZERS = Registry("optimizer")


class Optimizer:
    registry_name = "optimizer"

    def __init__(self, params: np.ndarray, grads: np.ndarray, decay_mask: np.ndarray,
                 lr: float = 0.01, weight_decay: float = 0.0):
        self.params, self.grads, self.decay_mask = params, grads, decay_mask
        self.lr = float(lr)
        self.weight_decay = float(weight_decay)
        self.steps = 0

    def step(self) -> None:
        """Apply one update from the current gradients."""
        raise NotImplementedError

    def state_dict(self) -> Dict[str, Any]:
        """Arrays and scalars that make a resumed run continue exactly."""
        raise NotImplementedError

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        raise NotImplementedError
