"""Stochastic gradient descent with optional momentum, Nesterov and L2 weight decay.

The update is the one ``torch.optim.SGD`` performs, element for element::

    d = g + weight_decay * decay_mask * p          (L2 term only where the mask is 1)
    if momentum:
        buf = d                                   on the first step
        buf = momentum * buf + (1 - dampening) * d   afterwards
        d = d + momentum * buf   if nesterov   else   buf
    p = p - lr * d

Everything runs as a few vectorised numpy passes over the flat vectors, writing into
preallocated buffers, so a step allocates no memory.  ``grads`` is only read: it is
still intact after ``step()`` (the gradient reducer or a compressor may look at it).
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

from dtnn.optim._checks import (as_bool, as_floats, check_vectors, load_buffers, require,
                                require_nonnegative)
from dtnn.optim.base import OPTIMIZERS, Optimizer, flat_vectors


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
        self._scratch = np.empty_like(params)
        self._decayed = None  # second scratch, made on the first step with weight decay

    def _direction_with_decay(self) -> np.ndarray:
        """g + weight_decay * mask * p, in a scratch buffer (grads stay intact)."""
        if self._decayed is None:
            self._decayed = np.empty_like(self.params)
        d = self._decayed
        np.multiply(self.params, self.decay_mask, out=d)
        d *= self.weight_decay
        d += self.grads
        return d

    def step(self) -> None:
        s = self._scratch
        d = self.grads if self.weight_decay == 0 else self._direction_with_decay()
        if self.momentum != 0:
            buf = self.momentum_buffer
            if self.steps == 0:
                np.copyto(buf, d)
            else:
                buf *= self.momentum
                if self.dampening == 0:
                    buf += d
                else:
                    np.multiply(d, 1.0 - self.dampening, out=s)
                    buf += s
            if self.nesterov:
                np.multiply(buf, self.momentum, out=s)
                s += d
                d = s
            else:
                d = buf
        np.multiply(d, -self.lr, out=s)
        self.params += s
        self.steps += 1

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
