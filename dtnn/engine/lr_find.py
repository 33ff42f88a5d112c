"""Learning-rate range test (L. N. Smith, "Cyclical Learning Rates for Training Neural
Networks", 2017; fastai's ``lr_find``).

Starting from the config's freshly initialised model, train for up to ``steps`` steps
while the learning rate grows geometrically from ``start_lr`` to ``end_lr``; record the
loss (averaged over all ranks: under MPI the test runs data-parallel with the real
gradient exchange), smooth it (bias-corrected exponential moving average), and stop
early once the smoothed loss (an exponential moving average, for the stop only) exceeds
``diverge`` times its minimum.  The curve used for the suggestion is smoothed without
lag: a centred moving average over about 1/15 of the steps.

The suggestion is ``suggest_fraction`` (default 1) times the learning rate where the
smoothed loss is lowest: the largest lr at which the loss still fell, the upper bound
of Smith's range test, for the decaying schedules (cosine, step) that start there and
leave it.  One tenth of it (fastai v1's advice, dtnn's first rule) and the steepest
descent (also reported) were measured against 5-value learning-rate sweeps in
benchmarks/results/recipes.md: both landed 2-3 pp below the best lr of 12-epoch cosine
runs, where the lowest-loss lr itself was next to the best.  With a constant lr, take
a fraction (``--fraction``).

    result = lr_find(cfg, ctx)            # LRFindResult
    result.suggested_lr, result.plot("lr_find.png")
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

from dtnn.config import Config
from dtnn.errors import ConfigError
from dtnn.log import get_logger
from dtnn.optim.schedules import Schedule


class RangeSchedule(Schedule):
    """lr = start * (end / start) ** (step / (steps - 1)): the range test's sweep."""

    registry_name = "lr-range"

    def __init__(self, start_lr: float, end_lr: float, steps: int, steps_per_epoch: int):
        super().__init__(start_lr, steps_per_epoch)
        self.start_lr, self.end_lr, self.steps = float(start_lr), float(end_lr), int(steps)

    def lr_at(self, step: int) -> float:
        t = min(self._check_step(step), self.steps - 1) / max(1, self.steps - 1)
        return self.start_lr * (self.end_lr / self.start_lr) ** t


@dataclass
class LRFindResult:
    lrs: List[float] = field(default_factory=list)
    losses: List[float] = field(default_factory=list)     # mean over ranks, per step
    smoothed: List[float] = field(default_factory=list)   # centred moving average
    suggested_lr: Optional[float] = None
    min_loss_lr: Optional[float] = None
    steepest_lr: Optional[float] = None
    diverged_at_lr: Optional[float] = None
    steps: int = 0
    config_lr: float = 0.0

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def plot(self, path: str) -> None:
        """Loss (raw and smoothed) vs learning rate, log x, the suggestion marked."""
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(self.lrs, self.losses, color="0.75", lw=1, label="loss")
        ax.plot(self.lrs, self.smoothed, color="C0", lw=2, label="smoothed")
        marks = (("suggested", self.suggested_lr, "C3"), ("minimum", self.min_loss_lr, "C2"),
                 ("config", self.config_lr, "0.3"))
        for name, lr, color in marks:
            if lr:
                ax.axvline(lr, color=color, ls="--", lw=1, label=f"{name} {lr:.3g}")
        ax.set_xscale("log")
        finite = [v for v in self.smoothed if math.isfinite(v)]
        raw = [v for v in self.losses if math.isfinite(v)]
        if finite:
            ax.set_ylim(min(finite + raw) * 0.9, min(max(finite), 3 * finite[0]) * 1.05)
        ax.set_xlabel("learning rate")
        ax.set_ylabel("training loss")
        ax.set_title("learning-rate range test")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)


def suggest(lrs: List[float], smoothed: List[float], fraction: float = 1.0,
            skip: int = 10) -> Dict[str, Optional[float]]:
    """``min_loss_lr`` (lowest smoothed loss, ignoring the first ``skip`` steps),
    ``suggested_lr`` = ``min_loss_lr * fraction`` (at least the first lr), and
    ``steepest_lr`` (most negative d loss / d log lr before the minimum)."""
    n = len(smoothed)
    if n < skip + 3:
        return {"min_loss_lr": None, "suggested_lr": None, "steepest_lr": None}
    s = np.asarray(smoothed, np.float64)
    s = np.where(np.isfinite(s), s, np.inf)
    i_min = skip + int(np.argmin(s[skip:]))
    log_lr = np.log(np.asarray(lrs, np.float64))
    steepest = None
    if i_min > skip + 1:
        slope = np.gradient(s[skip:i_min + 1], log_lr[skip:i_min + 1])
        steepest = float(lrs[skip + int(np.argmin(slope))])
    return {"min_loss_lr": float(lrs[i_min]),
            "suggested_lr": float(max(lrs[0], lrs[i_min] * fraction)),
            "steepest_lr": steepest}


def centred_average(values: List[float], window: int) -> List[float]:
    """Moving average over ``window`` (odd) neighbours, shrinking at the ends; no lag."""
    v = np.asarray(values, np.float64)
    half = max(0, window // 2)
    out = []
    for i in range(len(v)):
        part = v[max(0, i - half):i + half + 1]
        out.append(float(part.mean()) if np.isfinite(part).all() else math.inf)
    return out


def lr_find(cfg: Config, ctx, start_lr: float = 1e-5, end_lr: float = 10.0,
            steps: int = 200, smooth: float = 0.9, diverge: float = 4.0,
            suggest_fraction: float = 1.0) -> LRFindResult:
    """Run the range test for ``cfg`` (model, data, optimizer, batch, augmentation,
    gradient exchange and clipping as in training; no schedule, no checkpoint)."""
    if not 0 < start_lr < end_lr:
        raise ConfigError(f"lr-find: need 0 < start lr < end lr, got {start_lr:g} and "
                          f"{end_lr:g}")
    if steps < 20:
        raise ConfigError(f"lr-find: --steps must be >= 20, got {steps}")
    if not 0 <= smooth < 1:
        raise ConfigError(f"lr-find: --smooth must be in [0, 1), got {smooth:g}")
    if not 0 < suggest_fraction <= 1:
        raise ConfigError(f"lr-find: --fraction must be in (0, 1], got {suggest_fraction:g}")
    from dtnn.engine.session import (load_data, make_distributed_optimizer, make_loader,
                                     make_model)
    from dtnn.engine.trainer import Trainer

    data = load_data(cfg)
    model = make_model(cfg, data)
    loader = make_loader(cfg, data.train, ctx)
    # the run's own gradient exchange (cfg.dist), every replica from rank 0's state
    optimizer = make_distributed_optimizer(cfg, model, ctx)
    schedule = RangeSchedule(start_lr, end_lr, steps, loader.steps_per_epoch)
    trainer = Trainer(model, optimizer, schedule, loader, ctx, epochs=1, progress=False,
                      clip_grad_norm=cfg.optim.clip_grad_norm)
    result = LRFindResult(config_lr=cfg.optim.lr)
    avg, best, epoch = 0.0, math.inf, 0
    while result.steps < steps and result.diverged_at_lr is None:
        for xb, yb in loader.epoch(epoch):
            if result.steps >= steps:
                break
            lr = schedule.lr_at(result.steps)
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                local, _ = trainer.train_step(xb, yb)
            loss = float(ctx.allreduce_sum(np.array([local], np.float64))[0]) / ctx.size
            result.steps += 1
            result.lrs.append(lr)
            result.losses.append(loss)
            avg = smooth * avg + (1 - smooth) * loss if math.isfinite(loss) else math.inf
            value = avg / (1 - smooth ** result.steps) if math.isfinite(avg) else math.inf
            best = min(best, value)
            if not math.isfinite(value) or (result.steps > 10 and value > diverge * best):
                result.diverged_at_lr = lr   # the same loss on every rank: all stop here
                break
        epoch += 1
    result.smoothed = centred_average(result.losses, max(5, result.steps // 15))
    result.__dict__.update(suggest(result.lrs, result.smoothed, suggest_fraction))
    get_logger().info(
        f"lr-find: {result.steps} steps from lr {start_lr:g}"
        + (f", diverged at {result.diverged_at_lr:.3g}" if result.diverged_at_lr else "")
        + (f"; lowest loss at {result.min_loss_lr:.3g}, suggested lr {result.suggested_lr:.3g}"
           if result.suggested_lr else "; no suggestion (too few steps)"))
    return result
