"""Stateless learning-rate schedules: ``lr_at(step)`` from the global step alone.

A schedule holds no counters, so resuming from a checkpoint only needs the step
number, and every MPI rank computes the same value without communicating.  The
epoch of a step is ``step // steps_per_epoch``.

Built by name (``build_schedule``) from the ``SCHEDULES`` registry:

* ``constant``  -- ``base_lr``;
* ``step``      -- ``base_lr * gamma ** (epoch // step_size)`` (``step_size`` in epochs);
* ``multistep`` -- ``base_lr * gamma ** (number of milestones <= epoch)``;
* ``cosine``    -- from ``base_lr`` down to ``min_lr`` over ``epochs`` epochs, updated
  every step: ``min_lr + (base_lr - min_lr) * (1 + cos(pi * step / total_steps)) / 2``,
  then held at ``min_lr``.

Any of them can be wrapped by a linear warm-up (``warmup_epochs`` or
``warmup_steps``): during the first ``W`` steps the schedule's value is multiplied by
a factor rising linearly from ``warmup_start_factor`` (at step 0) to 1 (at step W),
which is what ``torch.optim.lr_scheduler.LinearLR`` chained with the schedule gives.
"""
from __future__ import annotations

import bisect
import math
from typing import Any, Dict, List, Optional, Sequence

from dtnn.errors import ConfigError
from dtnn.optim._checks import as_float, as_int, check_options, require
from dtnn.registry import Registry

SCHEDULES = Registry("lr schedule")


class Schedule:
    """Base class: subclasses implement ``lr_at``."""

    registry_name = "schedule"

    def __init__(self, base_lr: float, steps_per_epoch: int, epochs: Optional[float] = None):
        owner = f"lr schedule '{self.registry_name}'"
        self.base_lr = as_float(owner, "lr", base_lr)
        require(owner, "lr", base_lr, self.base_lr >= 0, ">= 0")
        self.steps_per_epoch = as_int(owner, "steps_per_epoch", steps_per_epoch)
        require(owner, "steps_per_epoch", steps_per_epoch, self.steps_per_epoch >= 1, ">= 1")
        self.epochs = None if epochs is None else as_float(owner, "epochs", epochs)

    @property
    def _owner(self) -> str:
        return f"lr schedule '{self.registry_name}'"

    def epoch_of(self, step: int) -> int:
        """The epoch (0-based) that global step ``step`` falls in."""
        return int(step) // self.steps_per_epoch

    def lr_at(self, step: int) -> float:
        """The learning rate of global step ``step`` (0-based)."""
        raise NotImplementedError

    def __call__(self, step: int) -> float:
        return self.lr_at(step)

    @staticmethod
    def _check_step(step: int) -> int:
        step = int(step)
        if step < 0:
            raise ValueError(f"step must be >= 0 (got {step})")
        return step

    def describe(self) -> str:
        """One line naming the schedule and its settings."""
        return f"{self.registry_name}(lr={self.base_lr:g})"


@SCHEDULES.register("constant")
class ConstantSchedule(Schedule):
    """``base_lr`` at every step."""
    def lr_at(self, step: int) -> float:
        self._check_step(step)
        return self.base_lr


class _GammaDecay(Schedule):
    """``base_lr * gamma ** decays(epoch)``: the step and multistep schedules."""
    gamma: float

    def _set_gamma(self, gamma: float) -> None:
        self.gamma = as_float(self._owner, "gamma", gamma)
        require(self._owner, "gamma", gamma, self.gamma > 0, "> 0")

    def _decays(self, epoch: int) -> int:
        """How many times the lr has been multiplied by gamma in ``epoch``."""
        raise NotImplementedError

    def lr_at(self, step: int) -> float:
        epoch = self.epoch_of(self._check_step(step))
        return self.base_lr * self.gamma ** self._decays(epoch)


@SCHEDULES.register("step")
class StepSchedule(_GammaDecay):
    """Multiply by ``gamma`` every ``step_size`` epochs."""

    def __init__(self, base_lr: float, steps_per_epoch: int, epochs: Optional[float] = None,
                 *, step_size: int, gamma: float = 0.1):
        super().__init__(base_lr, steps_per_epoch, epochs)
        self.step_size = as_int(self._owner, "step_size", step_size)
        require(self._owner, "step_size", step_size, self.step_size >= 1, ">= 1 (epochs)")
        self._set_gamma(gamma)

    def _decays(self, epoch: int) -> int:
        return epoch // self.step_size

    def describe(self) -> str:
        return f"step(lr={self.base_lr:g}, x{self.gamma:g} every {self.step_size} epochs)"


@SCHEDULES.register("multistep")
class MultiStepSchedule(_GammaDecay):
    """Multiply by ``gamma`` at each milestone epoch (repeats count twice, like torch)."""

    def __init__(self, base_lr: float, steps_per_epoch: int, epochs: Optional[float] = None,
                 *, milestones: Sequence[int], gamma: float = 0.1):
        super().__init__(base_lr, steps_per_epoch, epochs)
        if isinstance(milestones, (str, bytes)) or not hasattr(milestones, "__iter__"):
            raise ConfigError(f"{self._owner}: option 'milestones' must be a list of epochs "
                              f"(got {milestones!r})")
        ms: List[int] = sorted(as_int(self._owner, "milestones", m) for m in milestones)
        require(self._owner, "milestones", list(milestones), all(m >= 0 for m in ms),
                "a list of epochs >= 0")
        self.milestones = ms
        self._set_gamma(gamma)

    def _decays(self, epoch: int) -> int:
        return bisect.bisect_right(self.milestones, epoch)

    def describe(self) -> str:
        return f"multistep(lr={self.base_lr:g}, x{self.gamma:g} at epochs {self.milestones})"


@SCHEDULES.register("cosine")
class CosineSchedule(Schedule):
    """Half a cosine from ``base_lr`` to ``min_lr`` over ``epochs`` epochs, per step."""

    def __init__(self, base_lr: float, steps_per_epoch: int, epochs: Optional[float] = None,
                 *, min_lr: float = 0.0):
        super().__init__(base_lr, steps_per_epoch, epochs)
        if self.epochs is None or self.epochs <= 0:
            raise ConfigError(f"{self._owner}: needs the number of epochs (> 0), got {epochs!r}")
        self.min_lr = as_float(self._owner, "min_lr", min_lr)
        require(self._owner, "min_lr", min_lr, 0 <= self.min_lr, ">= 0")
        self.total_steps = max(1, int(round(self.epochs * self.steps_per_epoch)))

    def lr_at(self, step: int) -> float:
        t = min(self._check_step(step), self.total_steps)
        return self.min_lr + (self.base_lr - self.min_lr) * (
            1.0 + math.cos(math.pi * t / self.total_steps)) / 2.0

    def describe(self) -> str:
        return (f"cosine(lr={self.base_lr:g} -> {self.min_lr:g} over "
                f"{self.total_steps} steps)")


class WarmupSchedule(Schedule):
    """Linear warm-up in front of another schedule (multiplies its value)."""

    registry_name = "warmup"

    def __init__(self, inner: Schedule, warmup_steps: int, start_factor: float = 0.1):
        super().__init__(inner.base_lr, inner.steps_per_epoch, inner.epochs)
        self.inner = inner
        self.warmup_steps = int(warmup_steps)
        self.start_factor = float(start_factor)

    def factor_at(self, step: int) -> float:
        """The warm-up multiplier at ``step``: linear from the start factor to 1 over the
        warm-up."""
        step = self._check_step(step)
        if step >= self.warmup_steps:
            return 1.0
        s = self.start_factor
        return s + (1.0 - s) * step / self.warmup_steps

    def lr_at(self, step: int) -> float:
        return self.inner.lr_at(step) * self.factor_at(step)

    def describe(self) -> str:
        return (f"{self.inner.describe()} with {self.warmup_steps}-step linear warm-up "
                f"from x{self.start_factor:g}")


_WARMUP_OPTIONS = ("warmup_epochs", "warmup_steps", "warmup_start_factor")


def build_schedule(name: str, base_lr: float, steps_per_epoch: int,
                   epochs: Optional[float] = None, **options: Any) -> Schedule:
    """Make schedule ``name``; ``options`` are the schedule's own (e.g. ``step_size``,
    ``gamma``, ``milestones``, ``min_lr``) plus the warm-up ones: ``warmup_epochs``
    (may be fractional) or ``warmup_steps``, and ``warmup_start_factor`` (default 0.1).
    Unknown options raise ConfigError naming the option."""
    cls = SCHEDULES.get(name)
    owner = f"lr schedule '{name}'"
    warm = {k: options.pop(k) for k in _WARMUP_OPTIONS if k in options}
    check_options(owner, cls.__init__, options,
                  reserved=("base_lr", "steps_per_epoch", "epochs"), also=_WARMUP_OPTIONS)
    schedule = cls(base_lr, steps_per_epoch, epochs, **options)

    w_epochs, w_steps = warm.get("warmup_epochs"), warm.get("warmup_steps")
    if w_epochs is not None and w_steps is not None:
        raise ConfigError(f"{owner}: give 'warmup_epochs' or 'warmup_steps', not both")
    steps = 0
    if w_steps is not None:
        steps = as_int(owner, "warmup_steps", w_steps)
        require(owner, "warmup_steps", w_steps, steps >= 0, ">= 0")
    elif w_epochs is not None:
        ep = as_float(owner, "warmup_epochs", w_epochs)
        require(owner, "warmup_epochs", w_epochs, ep >= 0, ">= 0")
        steps = int(round(ep * schedule.steps_per_epoch))
    factor = as_float(owner, "warmup_start_factor", warm.get("warmup_start_factor", 0.1))
    require(owner, "warmup_start_factor", factor, 0 <= factor <= 1, "in [0, 1]")
    if steps > 0:
        return WarmupSchedule(schedule, steps, factor)
    return schedule


def schedule_options(name: str) -> Dict[str, Any]:
    """The options schedule ``name`` accepts, with their defaults (for help texts);
    required options map to ``None``."""
    import inspect

    sig = inspect.signature(SCHEDULES.get(name).__init__)
    out = {k: (None if p.default is inspect.Parameter.empty else p.default)
           for k, p in sig.parameters.items()
           if k not in ("self", "base_lr", "steps_per_epoch", "epochs")}
    out.update({"warmup_epochs": 0, "warmup_steps": 0, "warmup_start_factor": 0.1})
    return out
