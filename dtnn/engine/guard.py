"""The divergence guard: stop a run whose loss became non-finite or exploded, with advice.

Two checks, both decided identically on every rank without extra messages per step:

* every step, the norm of the gradients *after* the exchange (the same average on all
  ranks): if it is not finite, some rank's loss or gradients were (NaN spreads through
  the allreduce);
* every ``window`` steps, one all-reduce of the loss summed over the window: if its
  mean is above ``factor * ln(K)`` (K classes; ln K is the loss of a uniform guess), the
  run has exploded.  ``factor = 0`` keeps only the first check.

Either raises ``TrainingDiverged`` on every rank at the same step, so the CLI prints
one line from rank 0 and all ranks exit with status 2.
"""
from __future__ import annotations

import math

import numpy as np

from dtnn.errors import TrainingDiverged


class DivergenceGuard:
    def __init__(self, ctx, num_classes: int, factor: float = 3.0, window: int = 25):
        self.ctx = ctx
        self.factor = float(factor)
        self.window = max(1, int(window))
        self.threshold = self.factor * math.log(max(2, int(num_classes)))
        self._sum = 0.0
        self._count = 0

    def check_gradients(self, norm: float, step: int, lr: float) -> None:
        if not np.isfinite(norm):
            raise TrainingDiverged(self._advice(f"the gradients became {norm} (the loss on "
                                                f"some batch is no longer finite)", step, lr))

    def add_loss(self, loss: float, step: int, lr: float) -> None:
        if self.factor <= 0:
            return
        self._sum += loss if np.isfinite(loss) else float("inf")
        self._count += 1
        if self._count < self.window:
            return
        total = self.ctx.allreduce_sum(np.array([self._sum, self._count], np.float64))
        self._sum, self._count = 0.0, 0
        mean = float(total[0] / max(1.0, total[1]))
        if not mean <= self.threshold:
            raise TrainingDiverged(self._advice(
                f"the training loss exploded (mean {mean:.3g} over the last {self.window} "
                f"steps, above {self.factor:g} x ln(classes) = {self.threshold:.3g})",
                step, lr))

    @staticmethod
    def _advice(what: str, step: int, lr: float) -> str:
        return (f"training diverged at step {step}: {what} at lr {lr:.3g}; lower optim.lr "
                f"(`dtnn lr-find` suggests one), or add schedule.warmup_epochs or "
                f"optim.clip_grad_norm (train.divergence_loss=0 disables the loss check)")
