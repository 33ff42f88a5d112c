"""Stochastic gradient descent with optional momentum, Nesterov and L2 weight decay.

The update is the one ``torch.optim.SGD`` performs, element for element::

    d = g + weight_decay * decay_mask * p          (L2 term only where the mask is 1)
    if momentum:
        buf = d                                   on the first step
        buf = momentum * buf + (1 - dampening) * d   afterwards
        d = d + momentum * buf   if nesterov   else   buf
    p = p - lr * d

A step is one fused compiled pass over the flat vectors (``dtnn.optim._update``;
its numpy twin, a few vectorised passes into two preallocated scratch vectors, is the
fallback and gives the same bits), so a step allocates no memory.  ``grads`` is only
read: it is still intact after ``step()`` (the gradient reducer or a compressor may
look at it).
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from dtnn.optim._decode_update import kernel as decode_kernel
from dtnn.optim._update import kernels
from dtnn.optim._checks import (as_bool, as_floats, check_vectors, load_buffers, require,
                                require_nonnegative)
from dtnn.optim.base import OPTIMIZERS, Optimizer, RangeUpdate, part_of, flat_vectors, part_work


@OPTIMIZERS.register("sgd")
class SGD(Optimizer):
    """SGD on flat vectors.  Only ``lr`` and ``weight_decay`` may be changed between
    steps; the other hyper-parameters are fixed at construction."""

    def __init__(self, params, grads: Optional[np.ndarray] = None,
                 decay_mask: Optional[np.ndarray] = None, *, lr: float,
                 momentum: float = 0.0, nesterov: bool = False,
                 weight_decay: float = 0.0, dampening: float = 0.0):
        owner = "optimizer 'sgd'"
        params, grads, decay_mask, model = flat_vectors(params, grads, decay_mask)
        check_vectors(owner, params, grads, decay_mask)
        lr, weight_decay, momentum, dampening = as_floats(
            owner, lr=lr, weight_decay=weight_decay, momentum=momentum, dampening=dampening)
        nesterov = as_bool(owner, "nesterov", nesterov)
        require_nonnegative(owner, lr=lr, weight_decay=weight_decay, momentum=momentum)
        require(owner, "dampening", dampening, 0 <= dampening <= 1, "in [0, 1]")
        if nesterov:
            require(owner, "nesterov", nesterov, momentum > 0 and dampening == 0,
                    "false unless momentum > 0 and dampening == 0")
        super().__init__(params, grads, decay_mask, lr=lr, weight_decay=weight_decay,
                         model=model)
        self.momentum = momentum
        self.nesterov = nesterov
        self.dampening = dampening
        self.momentum_buffer = np.zeros_like(params) if momentum != 0 else None
        self._update, _, impl = kernels(params, grads, decay_mask)
        vectors = (params, decay_mask) + (() if self.momentum_buffer is None
                                          else (self.momentum_buffer,))
        self._decoded = decode_kernel(*vectors)
        #: the numpy twin's scratch vectors (the compiled pass needs none)
        self._work = (np.empty_like(params), np.empty_like(params)) if impl == "numpy" else None

    def begin_step(self) -> RangeUpdate:
        """See ``Optimizer.begin_step``: the scalars of this step, fixed now."""
        p, g, mask, buf, work, kernel = (self.params, self.grads, self.decay_mask,
                                         self.momentum_buffer, self._work, self._update)
        args = (-self.lr, self.weight_decay, self.momentum, 1.0 - self.dampening,
                self.nesterov, self.steps == 0)
        self.steps += 1

        def update(lo: int, hi: int) -> None:
            kernel(p[lo:hi], g[lo:hi], mask[lo:hi], part_of(buf, lo, hi), *args,
                   part_work(work, lo, hi))

        def decoded(kind, payload, n, chunk, alpha, levels, bounds, offs) -> None:
            """The same update of the ranges whose averaged gradient is the payload
            (``RangeUpdate.decoded``, dist.fuse_update): decoded block by block, never
            stored in ``grads``."""
            fused(kind, payload, n, chunk, alpha, levels, bounds, offs, p, mask, buf, *args)
        fused = self._decoded
        update.decoded = decoded
        return update

    def state_dict(self) -> Dict[str, Any]:
        """``{"steps": int}`` plus ``"momentum_buffer"`` (a copy) when momentum is on."""
        state: Dict[str, Any] = {"steps": int(self.steps)}
        if self.momentum_buffer is not None:
            state["momentum_buffer"] = self.momentum_buffer.copy()
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Copy a saved state into this optimizer's buffers (DataError on mismatch)."""
        buffers = {} if self.momentum_buffer is None else {"momentum_buffer": self.momentum_buffer}
        self.steps = load_buffers("optimizer 'sgd'", state, buffers)
