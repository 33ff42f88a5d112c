"""Optimizers over the model's flat parameter/gradient vectors, and stateless
learning-rate schedules.

    opt = build_optimizer("sgd", model, lr=0.1, momentum=0.9, weight_decay=5e-4)
    sched = build_schedule("step", 0.1, steps_per_epoch, epochs, step_size=7, gamma=0.1)
    for step in ...:
        opt.lr = sched.lr_at(step)
        opt.step()
"""
from __future__ import annotations

from typing import Any

from dtnn.optim._checks import check_options
from dtnn.optim.adam import Adam, AdamW
from dtnn.optim.base import OPTIMIZERS, Optimizer
from dtnn.optim.clip import clip_grad_norm, grad_norm
from dtnn.optim.schedules import (SCHEDULES, ConstantSchedule, CosineSchedule,
                                  MultiStepSchedule, Schedule, StepSchedule, WarmupSchedule,
                                  build_schedule, schedule_options)
from dtnn.optim.sgd import SGD

__all__ = [
    "OPTIMIZERS", "Optimizer", "SGD", "Adam", "AdamW", "build_optimizer", "clip_grad_norm",
    "grad_norm",
    "SCHEDULES", "Schedule", "ConstantSchedule", "StepSchedule", "MultiStepSchedule",
    "CosineSchedule", "WarmupSchedule", "build_schedule", "schedule_options",
]


def build_optimizer(name: str, model: Any, **options: Any) -> Optimizer:
    """Optimizer ``name`` over ``model``'s flat_params / flat_grads / decay_mask.

    ``options`` are the optimizer's keyword arguments (``lr`` is required); an
    unknown or missing option raises ConfigError naming it.  The model must be built.
    """
    cls = OPTIMIZERS.get(name)
    if not getattr(model, "built", False):
        raise ValueError("build_optimizer: the model must be built first (model.build())")
    check_options(f"optimizer '{name}'", cls.__init__, options,
                  reserved=("params", "grads", "decay_mask"))
    return cls(model, **options)
