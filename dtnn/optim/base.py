"""Optimizers work on the model's flat parameter/gradient vectors (see dtnn.models.model).

An optimizer is built with the flat ``params`` and ``grads`` arrays (updated in
place) and the per-element ``decay_mask`` (1.0 where weight decay applies: weights,
0.0 for biases and BatchNorm parameters).  The learning rate is set from outside
each step (``opt.lr = schedule.lr_at(step)``), so schedules stay stateless.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from dtnn.registry import Registry

OPTIMIZERS = Registry("optimizer")

#: ``update(lo, hi)``: one step's update of ``params[lo:hi]`` (``Optimizer.begin_step``).
#: An optimizer with a fused decode kernel (SGD) gives it an attribute ``decoded(kind,
#: payload, n, chunk, alpha, levels, bounds, offs)``: the same update of the ranges
#: whose averaged gradient is a quantised-ring payload (``dist.fuse_update``: piece k,
#: payload elements [bounds[k], bounds[k+1]), is ``params[offs[k]:...]``), decoding it
#: block by block instead of reading ``grads``
RangeUpdate = Callable[[int, int], None]


def part_of(a: Optional[np.ndarray], lo: int, hi: int) -> Optional[np.ndarray]:
    return None if a is None else a[lo:hi]


def part_work(work, lo: int, hi: int):
    """The numpy twin's scratch vectors cut to ``[lo, hi)`` (None stays None)."""
    return None if work is None else (work[0][lo:hi], work[1][lo:hi])


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
        self.begin_step()(0, int(self.params.size))

    def begin_step(self) -> "RangeUpdate":
        """Start one step: advance the step counter now and return ``update(lo, hi)``,
        which applies this step's update to ``params[lo:hi]`` (and its state) with the
        hyper-parameters as they are now.  Every element must be updated exactly once,
        in any order of disjoint ranges, before the next ``begin_step``: the result is
        then bit-identical to ``step()`` (the update is elementwise).  This is how
        ``DistributedOptimizer`` defers each bucket's update to the next forward pass
        (``dist.defer_update``)."""
        raise NotImplementedError

    def state_dict(self) -> Dict[str, Any]:
        """Arrays and scalars that make a resumed run continue exactly."""
        raise NotImplementedError

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore ``state_dict()`` (DataError if it belongs to another optimizer or model)."""
        raise NotImplementedError
