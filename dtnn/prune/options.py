"""The ``[prune]`` section of the config (``--set prune.KEY=VALUE``)."""
from __future__ import annotations

from dataclasses import dataclass

from dtnn.errors import ConfigError


@dataclass
class PruneConfig:
    #: importance criterion: taylor, l1, random
    criterion: str = "taylor"
    #: what ``keep`` is a fraction of: maps (conv feature maps), params, flops
    target: str = "maps"
    #: stop when this fraction of the original quantity (see ``target``) is left
    keep: float = 0.5
    #: conv feature maps removed per step, as a fraction of the original count ...
    step_fraction: float = 0.05
    #: ... or as a number (> 0 overrides step_fraction)
    step_maps: int = 0
    #: "constant": every step removes step_fraction of the ORIGINAL maps (or step_maps);
    #: "geometric": step_fraction of the maps LEFT, so steps shrink as the model does
    #: (fewer maps per step near the end, where each one matters more)
    step_schedule: str = "constant"
    #: prune the hidden units of Dense layers too (same criterion on their outputs)
    dense: bool = True
    #: fraction of hidden Dense units to keep (-1 = the same fraction as conv maps);
    #: they are removed in proportion to the conv maps, step by step
    dense_keep: float = -1.0
    #: mini-batches over which the Taylor criterion is accumulated per step
    batches: int = 10
    #: fine-tuning iterations after every pruning step (0 = none)
    finetune_steps: int = 100
    #: learning rate of the fine-tuning (constant; SGD settings from [optim])
    lr: float = 0.01
    #: never leave a layer with fewer units than this
    min_units: int = 1
    #: evaluate the test set after every step (always after the last)
    eval_every: int = 1
    #: batch-1 latency repetitions per evaluation (0 = skip the measurement)
    latency_reps: int = 20
    #: seed of the random criterion and of the fine-tuning data order
    seed: int = 0
    #: after the last step, fine-tune up to this many epochs with the trainer's
    #: output.keep_best / train.early_stopping_patience / schedule.plateau_* (0 = none)
    final_epochs: int = 0
    #: lr schedule of that phase, from prune.lr: "constant" (with the plateau reduction,
    #: if configured) or a decaying one over final_epochs ("cosine", or "step" /
    #: "multistep" with the [schedule] options), down to schedule.min_lr
    final_schedule: str = "constant"

    def validate(self) -> None:
        from dtnn.prune.criteria import CRITERIA
        CRITERIA.get(self.criterion)
        checks = [
            (self.target in ("maps", "params", "flops"),
             f"prune.target must be maps, params or flops, got {self.target!r}"),
            (0.0 < self.keep <= 1.0, f"prune.keep must be in (0, 1], got {self.keep!r}"),
            (0.0 < self.step_fraction <= 1.0,
             f"prune.step_fraction must be in (0, 1], got {self.step_fraction!r}"),
            (self.step_maps >= 0, "prune.step_maps must be >= 0"),
            (self.step_schedule in ("constant", "geometric"),
             f"prune.step_schedule must be constant or geometric, got {self.step_schedule!r}"),
            (self.dense_keep == -1.0 or 0.0 < self.dense_keep <= 1.0,
             f"prune.dense_keep must be -1 or in (0, 1], got {self.dense_keep!r}"),
            (self.batches >= 1, "prune.batches must be >= 1"),
            (self.finetune_steps >= 0, "prune.finetune_steps must be >= 0"),
            (self.lr > 0, "prune.lr must be > 0"),
            (self.min_units >= 1, "prune.min_units must be >= 1"),
            (self.eval_every >= 1, "prune.eval_every must be >= 1"),
            (self.latency_reps >= 0, "prune.latency_reps must be >= 0"),
            (self.final_epochs >= 0, "prune.final_epochs must be >= 0"),
            (self.final_schedule in ("constant", "cosine", "step", "multistep"),
             "prune.final_schedule must be constant, cosine, step or multistep, got "
             f"{self.final_schedule!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
