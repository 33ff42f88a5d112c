"""Adam and AdamW with bias correction, as ``torch.optim.Adam`` / ``torch.optim.AdamW``.

Per element, with ``t`` the 1-based step::

    Adam  (L2):        g = g + weight_decay * decay_mask * p
    AdamW (decoupled): p = p * (1 - lr * weight_decay)   where decay_mask is 1
    m = m + (1 - beta1) * (g - m)
    v = beta2 * v + (1 - beta2) * g * g
    p = p - (lr / (1 - beta1**t)) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

One fused compiled pass over the flat vectors (``dtnn.optim._update``; its numpy
twin, with two preallocated scratch vectors, gives the same bits), so a step allocates
nothing; ``grads`` is left intact.  For AdamW ``decay_mask`` is read once, at
construction, as a 0/1 mask (nonzero = decay); for L2 it multiplies the decay term on
every step.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

import numpy as np

from dtnn.errors import ConfigError
from dtnn.optim._update import adam_scalars, kernels
from dtnn.optim._checks import (as_bool, as_float, as_floats, check_vectors, load_buffers,
                                require, require_nonnegative)
from dtnn.optim.base import OPTIMIZERS, Optimizer, RangeUpdate, flat_vectors, part_work


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
        _, self._update, impl = kernels(params, grads, decay_mask)
        #: the numpy twin's scratch vectors (the compiled pass needs none)
        self._work = (np.empty_like(params), np.empty_like(params)) if impl == "numpy" else None
        #: AdamW: the mask as it was at construction (1.0 where decay applies)
        self._decay_on = (np.asarray(decay_mask) != 0).astype(np.float32) if decoupled else None

    def begin_step(self) -> RangeUpdate:
        """See ``Optimizer.begin_step``: the step count (bias corrections) and the
        scalars of this step, fixed now."""
        self.steps += 1
        p, g, m, v, work, kernel = (self.params, self.grads, self.exp_avg, self.exp_avg_sq,
                                    self._work, self._update)
        mask = self._decay_on if self.decoupled else self.decay_mask
        scalars = adam_scalars(self.lr, self.betas, self.eps, self.weight_decay,
                               self.decoupled, self.steps)

        def update(lo: int, hi: int) -> None:
            kernel(p[lo:hi], g[lo:hi], mask[lo:hi], m[lo:hi], v[lo:hi], **scalars,
                   work=part_work(work, lo, hi))
        return update

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
