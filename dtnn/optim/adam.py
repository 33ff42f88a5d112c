"""Adam and AdamW with bias correction, as ``torch.optim.Adam`` / ``torch.optim.AdamW``.

Per element, with ``t`` the 1-based step::

    Adam  (L2):        g = g + weight_decay * decay_mask * p
    AdamW (decoupled): p = p * (1 - lr * weight_decay)   where decay_mask is 1
    m = m + (1 - beta1) * (g - m)
    v = beta2 * v + (1 - beta2) * g * g
    p = p - (lr / (1 - beta1**t)) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

Vectorised over the flat vectors with two preallocated scratch buffers, so a step
allocates nothing; ``grads`` is left intact.  For AdamW ``decay_mask`` is read once,
at construction, as a 0/1 mask (nonzero = decay); for L2 it multiplies the decay term
on every step.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import numpy as np

from dtnn.errors import ConfigError
from dtnn.optim._checks import (as_bool, as_float, as_floats, check_vectors, load_buffers,
                                require, require_nonnegative)
from dtnn.optim.base import OPTIMIZERS, Optimizer, flat_vectors


@OPTIMIZERS.register("adam")
class Adam(Optimizer):
    """Adam on flat vectors.  ``lr`` and ``weight_decay`` may change between steps;
    ``betas``/``eps``/``decoupled`` are fixed at construction."""

    def __init__(self, params, grads: Optional[np.ndarray] = None,
                 decay_mask: Optional[np.ndarray] = None, *, lr: float,
                 betas: Sequence[float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0, decoupled: bool = False):
        owner = f"optimizer '{type(self).registry_name}'"
        params, grads, decay_mask, model = flat_vectors(params, grads, decay_mask)
        check_vectors(owner, params, grads, decay_mask)
        lr, eps, weight_decay = as_floats(owner, lr=lr, eps=eps, weight_decay=weight_decay)
        decoupled = as_bool(owner, "decoupled", decoupled)
        if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") or len(betas) != 2:
            raise ConfigError(f"{owner}: option 'betas' must be a pair of numbers (got {betas!r})")
        b1, b2 = (as_float(owner, "betas", b) for b in betas)
        require_nonnegative(owner, lr=lr, eps=eps, weight_decay=weight_decay)
        require(owner, "betas", list(betas), 0 <= b1 < 1 and 0 <= b2 < 1, "two numbers in [0, 1)")
        super().__init__(params, grads, decay_mask, lr=lr, weight_decay=weight_decay,
                         model=model)
        self.betas = (b1, b2)
        self.eps = eps
        self.decoupled = decoupled
        self.exp_avg = np.zeros_like(params)
        self.exp_avg_sq = np.zeros_like(params)
        self._s1 = np.empty_like(params)
        self._s2 = np.empty_like(params)
        self._decay_on = np.asarray(decay_mask) != 0 if decoupled else None

    def step(self) -> None:
        p, g, m, v, s1, s2 = self.params, self.grads, self.exp_avg, self.exp_avg_sq, self._s1, self._s2
        b1, b2 = self.betas
        lr, wd = self.lr, self.weight_decay
        self.steps += 1
        t = self.steps
        if wd != 0:
            if self.decoupled:
                np.multiply(p, 1.0 - lr * wd, out=p, where=self._decay_on)
            else:
                np.multiply(p, self.decay_mask, out=s1)
                s1 *= wd
                s1 += g
                g = s1
        # first moment: m.lerp(g, 1 - beta1), in the same two forms torch uses
        w = 1.0 - b1
        np.subtract(g, m, out=s2)
        if abs(w) < 0.5:
            s2 *= w
            m += s2
        else:
            s2 *= 1.0 - w
            np.subtract(g, s2, out=m)
        # second moment
        v *= b2
        np.multiply(g, 1.0 - b2, out=s2)
        s2 *= g
        v += s2
        # bias-corrected step (g is dead from here on, so s1 is free)
        step_size = lr / (1.0 - b1 ** t)
        bc2_sqrt = (1.0 - b2 ** t) ** 0.5
        np.sqrt(v, out=s2)
        s2 /= bc2_sqrt
        s2 += self.eps
        np.multiply(m, -step_size, out=s1)
        s1 /= s2
        p += s1

    def state_dict(self) -> Dict[str, Any]:
        """``{"steps", "exp_avg", "exp_avg_sq"}`` (arrays are copies)."""
        return {"steps": int(self.steps), "exp_avg": self.exp_avg.copy(),
                "exp_avg_sq": self.exp_avg_sq.copy()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Copy a saved state into this optimizer's buffers (DataError on mismatch)."""
        self.steps = load_buffers(f"optimizer '{type(self).registry_name}'", state,
                                  {"exp_avg": self.exp_avg, "exp_avg_sq": self.exp_avg_sq})


@OPTIMIZERS.register("adamw")
class AdamW(Adam):
    """Adam with decoupled weight decay; like torch, ``weight_decay`` defaults to 0.01."""

    def __init__(self, params, grads: Optional[np.ndarray] = None,
                 decay_mask: Optional[np.ndarray] = None, *, lr: float,
                 betas: Sequence[float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01):
        super().__init__(params, grads, decay_mask, lr=lr, betas=betas, eps=eps,
                         weight_decay=weight_decay, decoupled=True)
