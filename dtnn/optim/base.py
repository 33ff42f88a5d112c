"""Optimizers work on the model's flat parameter/gradient vectors (see dtnn.models.model).

An optimizer is built with the flat ``params`` and ``grads`` arrays (updated in
place) and the per-element ``decay_mask`` (1.0 where weight decay applies: weights,
0.0 for biases and BatchNorm parameters).  The learning rate is set from outside
each step (``opt.lr = schedule.lr_at(step)``), so schedules stay stateless.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import numpy as np

from dtnn.registry import Registry

OPTIMIZERS = Registry("optimizer")


def flat_vectors(target: Any, grads: Optional[np.ndarray] = None,
                 decay_mask: Optional[np.ndarray] = None) -> Tuple[Any, Any, Any, Any]:
    """``(params, grads, decay_mask, model)`` of what an optimizer was given: a built
    model (``SGD(model, lr=0.1)``: its flat vectors) or the three vectors themselves
    (``SGD(params, grads, decay_mask, lr=0.1)``; model None)."""
    if hasattr(target, "flat_params"):
        if grads is not None or decay_mask is not None:
            raise TypeError("optimizer: pass a model alone, or params, grads and decay_mask")
        if not getattr(target, "built", False):
            raise ValueError("optimizer: the model must be built first (model.build())")
        return target.flat_params, target.flat_grads, target.decay_mask, target
    if grads is None or decay_mask is None:
        raise TypeError("optimizer: pass a built model, or params, grads and decay_mask")
    return target, grads, decay_mask, None


class Optimizer:
    """Base class.  Subclasses take ``(model, *, lr, ...)`` or the flat vectors
    ``(params, grads, decay_mask, *, lr, ...)`` (see ``flat_vectors``)."""

    registry_name = "optimizer"

    def __init__(self, params: np.ndarray, grads: np.ndarray, decay_mask: np.ndarray,
                 lr: float = 0.01, weight_decay: float = 0.0, model: Any = None):
        self.params, self.grads, self.decay_mask = params, grads, decay_mask
        #: the model whose flat vectors these are (None if built from the vectors)
        self.model = model
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
        """Restore ``state_dict()`` (DataError if it belongs to another optimizer or model)."""
        raise NotImplementedError
