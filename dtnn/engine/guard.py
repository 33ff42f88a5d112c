"""The training guards: stop, with advice, a run that diverged or whose network died.

Three checks, all decided identically on every rank without extra messages per step:

* every step, the norm of the gradients *after* the exchange (the same average on all
  ranks): if it is not finite, some rank's loss or gradients were (NaN spreads through
  the allreduce);
* every ``window`` steps, one all-reduce of the window's sums (loss, correct
  predictions, samples, spread of the logits): if the mean loss is above
  ``factor * ln(K)`` (K classes; ln K is the loss of a uniform guess), the run has
  exploded.  ``factor = 0`` turns this check off;
* from the same sums, the *dead network* check: a network whose hidden ReLUs all died
  (typically after a too-large first step) computes the same logits for every input —
  only the output biases still learn, so the loss sits at the entropy of the class
  prior (ln K on balanced data) and the accuracy at a constant guess, for as many epochs
  as one lets it run.  When the logits' spread over each batch has stayed near zero for
  ``dead_steps`` consecutive steps past warm-up, the run stops.  The criterion is the
  output's independence of the input rather than "loss near ln K": a healthy network
  trained at a small LR also starts near ln K, but its logits vary with the input.
  ``dead_steps = 0`` turns it off.  (The streak restarts after a resume.)

Each raises a ``TrainingDiverged`` (``TrainingStalled`` for a dead network) on every
rank at the same step, so the CLI prints one line from rank 0 and all ranks exit with
status 2.
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np

from dtnn.errors import TrainingDiverged, TrainingStalled

#: the logits' spread over a batch (std per class, averaged over classes) below which
#: they do not depend on the input: exactly 0 when every hidden ReLU is dead
DEAD_SPREAD = 1e-3


class DivergenceGuard:
    def __init__(self, ctx, num_classes: int, factor: float = 3.0, window: int = 25,
                 dead_steps: int = 0, warmup_steps: int = 0):
        self.ctx = ctx
        self.factor = float(factor)
        self.window = max(1, int(window))
        self.num_classes = max(2, int(num_classes))
        self.threshold = self.factor * math.log(self.num_classes)
        self.dead_steps = max(0, int(dead_steps))
        self.warmup_steps = max(0, int(warmup_steps))
        self._sums = np.zeros(6, np.float64)  # loss, steps, correct, samples, spread, batches
        self._window_start: Optional[int] = None
        self._dead_since: Optional[int] = None   # first step of the current dead streak

    def check_gradients(self, norm: float, step: int, lr: float) -> None:
        if not np.isfinite(norm):
            raise TrainingDiverged(self._advice(f"the gradients became {norm} (the loss on "
                                                f"some batch is no longer finite)", step, lr))

    def add_loss(self, loss: float, step: int, lr: float, correct: Optional[int] = None,
                 logits: Optional[np.ndarray] = None) -> None:
        """One step's (local) loss; with ``correct`` and this rank's ``logits`` the
        dead-network check runs too."""
        if self.factor <= 0 and not self.dead_steps:
            return
        if self._window_start is None:
            self._window_start = step
        sums = self._sums
        sums[0] += loss if np.isfinite(loss) else float("inf")
        sums[1] += 1
        if (correct is not None and logits is not None and len(logits) > 1
                and self._dead_check_reads(self._window_start)):
            # only windows the dead-network check reads: the spread is most of this
            # call's cost
            sums[2] += correct
            sums[3] += len(logits)
            with np.errstate(all="ignore"):
                sums[4] += float(np.std(logits, axis=0, dtype=np.float64).mean())
            sums[5] += 1
        if sums[1] < self.window:
            return
        total = self.ctx.allreduce_sum(sums)
        start, self._window_start = self._window_start, None
        self._sums = np.zeros_like(sums)
        mean = float(total[0] / max(1.0, total[1]))
        if self.factor > 0 and not mean <= self.threshold:
            raise TrainingDiverged(self._advice(
                f"the training loss exploded (mean {mean:.3g} over the last {self.window} "
                f"steps, above {self.factor:g} x ln(classes) = {self.threshold:.3g})",
                step, lr))
        self._check_dead(total, mean, start, step, lr)

    def _dead_check_reads(self, start: int) -> bool:
        """Whether the dead-network check reads the window that began at step ``start``
        (it is on, and skips the warm-up)."""
        return bool(self.dead_steps) and start > self.warmup_steps

    def _check_dead(self, total: np.ndarray, mean: float, start: int, step: int,
                    lr: float) -> None:
        if not self._dead_check_reads(start) or total[5] == 0:
            return
        spread = total[4] / total[5]
        if not spread < DEAD_SPREAD:   # (NaN: not dead, the other checks handle it)
            self._dead_since = None
            return
        if self._dead_since is None:
            self._dead_since = start
        if step - self._dead_since + 1 < self.dead_steps:
            return
        accuracy = total[2] / max(1.0, total[3])
        raise TrainingStalled(
            f"training stalled at step {step}: the network's output no longer depends on "
            f"its input (dead ReLUs: logit spread {spread:.1e} for the last "
            f"{step - self._dead_since + 1} steps; loss {mean:.3f}, ln({self.num_classes}) "
            f"= {math.log(self.num_classes):.3f}; train accuracy {100 * accuracy:.1f}%, "
            f"chance {100 / self.num_classes:.1f}%) at lr {lr:.3g}; lower optim.lr "
            f"(`dtnn lr-find` suggests one) or add schedule.warmup_epochs "
            f"(train.dead_network_epochs=0 disables this check)")

    @staticmethod
    def _advice(what: str, step: int, lr: float) -> str:
        return (f"training diverged at step {step}: {what} at lr {lr:.3g}; lower optim.lr "
                f"(`dtnn lr-find` suggests one), or add schedule.warmup_epochs or "
                f"optim.clip_grad_norm (train.divergence_loss=0 disables the loss check)")
