"""The pruning loop: rank units, cut the lowest, fine-tune, measure, repeat.

``run_prune(cfg, ctx, checkpoint)`` is what ``dtnn prune`` runs, alone or under
``mpiexec``. One *pruning step* is:

1. score every prunable conv feature map (and hidden dense unit) with the criterion
   (Taylor: over ``prune.batches`` training mini-batches, per-rank sums allreduced);
2. on rank 0, pick the lowest-ranked units (scores normalised per layer, ranked over
   all layers; dense units are removed so their kept fraction follows the conv maps'
   down to ``prune.dense_keep``) and broadcast the choice, so every replica removes
   exactly the same units;
3. remove them physically (``dtnn.prune.surgery``);
4. fine-tune ``prune.finetune_steps`` iterations with the ordinary data-parallel
   trainer step (gradient exchange and compression as configured in ``[dist]``;
   a fresh SGD state after every surgery);
5. evaluate on the test set and write one JSON line (``prune.jsonl``).

It stops when the target (``prune.keep`` of the original maps, parameters or FLOPs) is
reached. After every step rank 0 writes ``prune_state.h5`` (the current model and the
loop's position: step, data cursor, records); ``--resume`` continues from it exactly,
since the fine-tuning data order is a function of that cursor and every random stream
(dropout) is reseeded from (seed, step, rank) at each step.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

from dtnn.errors import ConfigError, UserError
from dtnn.log import get_logger
from dtnn.prune.cost import batch1_latency_ms, model_cost
from dtnn.prune.criteria import CRITERIA, select
from dtnn.prune.graph import prunable_groups
from dtnn.prune.surgery import remove_units

STATE_FILE = "prune_state.h5"
RESULT_FILE = "pruned.h5"


@dataclass
class PruneState:
    """Where the loop stands (checkpointed after every step)."""
    step: int = 0           # pruning steps done
    data_epoch: int = 0     # fine-tuning data cursor: epoch of the loader ...
    data_step: int = 0      # ... and the next batch in it
    iterations: int = 0     # fine-tuning iterations so far
    original: Dict[str, Any] = field(default_factory=dict)
    records: List[Dict[str, Any]] = field(default_factory=list)
    done: bool = False
    final_done: bool = False   # the optional final fine-tuning phase (prune.final_epochs)


class BatchStream:
    """Endless batches from a BatchLoader; the cursor (epoch, step) is the state."""

    def __init__(self, loader, epoch: int = 0, step: int = 0):
        self.loader, self.epoch, self.step = loader, epoch, step
        self._it = None

    def next(self):
        while True:
            if self._it is None:
                self._it = self.loader.epoch(self.epoch, start_step=self.step)
            try:
                batch = next(self._it)
                self.step += 1
                return batch
            except StopIteration:
                self._it, self.epoch, self.step = None, self.epoch + 1, 0

    def take(self, n: int):
        for _ in range(n):
            yield self.next()


def check_prunable(model, cfg) -> None:
    """ConfigError unless the model has at least one prunable conv layer."""
    groups = prunable_groups(model)
    convs = [g for g in groups if g.kind == "conv"]
    if not convs:
        raise ConfigError("the model has no Conv2D layer to prune")
    if not any(g.prunable for g in convs):
        why = "; ".join(f"layer {g.producer}: {g.reason}" for g in convs)
        raise ConfigError(f"no Conv2D layer of this model can be pruned ({why})")


def _targets(cfg, original: Dict[str, Any], maps_left: Optional[int] = None
             ) -> Dict[str, Any]:
    """The maps to keep at the end (target "maps") and the maps to remove this step:
    ``step_maps``, or ``step_fraction`` of the original maps ("constant") or of the
    ``maps_left`` ("geometric")."""
    p = cfg.prune
    base = original["maps"]
    if p.step_schedule == "geometric" and maps_left is not None:
        base = maps_left
    step = p.step_maps or max(1, int(math.ceil(p.step_fraction * base)))
    return {"maps": int(round(p.keep * original["maps"])) if p.target == "maps" else 0,
            "step": step}


def _reached(cfg, cost: Dict[str, Any], original: Dict[str, Any]) -> bool:
    p = cfg.prune
    if p.target == "maps":
        return cost["maps"] <= round(p.keep * original["maps"])
    return cost[p.target] <= p.keep * original[p.target]


def plan_step(cfg, model, original: Dict[str, Any], scores: Dict[int, np.ndarray]
              ) -> Dict[int, List[int]]:
    """The units to remove in one step (deterministic for given scores)."""
    p = cfg.prune
    groups = {g.producer: g for g in prunable_groups(model) if g.prunable}
    cost = model_cost(model)
    t = _targets(cfg, original, cost["maps"])
    n_conv = t["step"]
    if p.target == "maps":
        n_conv = min(n_conv, cost["maps"] - t["maps"])
    conv_scores = {k: v for k, v in scores.items() if groups[k].kind == "conv"}
    removals = select(conv_scores, n_conv, p.min_units) if n_conv > 0 else {}
    dense_scores = {k: v for k, v in scores.items() if groups[k].kind == "dense"}
    if dense_scores and original["dense_units"]:
        removed = sum(len(v) for v in removals.values())
        frac = (cost["maps"] - removed) / original["maps"]
        if p.dense_keep > 0:
            frac = max(frac, p.dense_keep)
        want = int(round(frac * original["dense_units"]))
        n_dense = cost["dense_units"] - want
        if n_dense > 0:
            removals.update(select(dense_scores, n_dense, p.min_units))
    return removals


class Pruner:
    """State and steps of one pruning run (see the module docstring)."""

    def __init__(self, cfg, ctx, model, data, meta: Dict[str, Any], run_dir: str,
                 state: Optional[PruneState] = None):
        from dtnn.data import Augment, BatchLoader
        self.cfg, self.ctx, self.model, self.data, self.meta = cfg, ctx, model, data, meta
        self.run_dir = run_dir
        self.log = get_logger()
        self.criterion = CRITERIA.get(cfg.prune.criterion)()
        augment = None
        if cfg.data.augment_shift or cfg.data.augment_flip:
            augment = Augment(shift=cfg.data.augment_shift, flip=cfg.data.augment_flip,
                              seed=cfg.prune.seed)
        self.loader = BatchLoader(data.train, cfg.train.batch_size, shuffle=True,
                                  seed=cfg.prune.seed, drop_last=True, rank=ctx.rank,
                                  world_size=ctx.size, augment=augment)
        self.state = state or PruneState(original=model_cost(model))
        self.stream = BatchStream(self.loader, self.state.data_epoch, self.state.data_step)
        self.trainer = None
        self.optimizer = None

    # --- pieces -------------------------------------------------------------------
    def _new_trainer(self):
        from dtnn.engine.trainer import Trainer
        from dtnn.optim import build_optimizer
        from dtnn.optim.schedules import build_schedule
        o = self.cfg.optim
        self.optimizer = build_optimizer("sgd", self.model, lr=self.cfg.prune.lr,
                                         momentum=o.momentum, nesterov=o.nesterov,
                                         weight_decay=o.weight_decay)
        from dtnn.layers.loss import SoftmaxCrossEntropy
        from dtnn.parallel.optimizer import DistributedOptimizer
        schedule = build_schedule("constant", self.cfg.prune.lr, 1)
        # the exchange from the run's [dist] options; every rank holds the same model
        step = DistributedOptimizer(
            self.optimizer, self.model, ctx=self.ctx, options=self.cfg.dist, broadcast=False,
            loss=SoftmaxCrossEntropy(label_smoothing=self.cfg.train.label_smoothing))
        self.trainer = Trainer(self.model, step, schedule, self.loader, self.ctx,
                               epochs=1, eval_batch_size=self.cfg.train.eval_batch_size,
                               progress=False)
        # dropout: a stream per (seed, step, rank), so a resumed run draws the same masks
        self.model.reseed_rngs(self.cfg.prune.seed, self.state.step * 65536 + self.ctx.rank)

    def _cost_record(self, removed: int, cost: Dict[str, Any]) -> Dict[str, Any]:
        orig = self.state.original
        return {"step": self.state.step, "criterion": self.cfg.prune.criterion,
                "removed": removed, "iterations": self.state.iterations,
                "maps_kept": cost["maps"] / orig["maps"],
                "params_kept": cost["params"] / orig["params"],
                "flops_kept": cost["flops"] / orig["flops"], **cost,
                "processes": self.ctx.size}

    def measure(self, removed: int) -> Dict[str, Any]:
        if self.trainer is None:
            self._new_trainer()
        cost = model_cost(self.model)
        ev = self.trainer.evaluate(self.data.test) if self.data.test is not None else None
        latency = None
        if self.cfg.prune.latency_reps and self.ctx.is_root:
            latency = batch1_latency_ms(self.model, self.cfg.prune.latency_reps)
        record = dict(self._cost_record(removed, cost), latency_b1_ms=latency)
        if ev is not None:
            record.update(test_accuracy=ev.accuracy, test_macro_f1=ev.report["macro"]["f1"],
                          test_loss=ev.loss)
        return record

    def scores(self) -> Dict[int, np.ndarray]:
        groups = [g for g in prunable_groups(self.model) if g.prunable
                  and (g.kind == "conv" or self.cfg.prune.dense)]
        batches = self.stream.take(self.cfg.prune.batches) if self.criterion.uses_data else []
        return self.criterion.scores(self.model, groups, batches, self.ctx,
                                     step=self.state.step, seed=self.cfg.prune.seed)

    def finetune(self, steps: int) -> float:
        losses = []
        for _ in range(steps):
            xb, yb = self.stream.next()
            loss, _ = self.trainer.train_step(xb, yb)
            if not np.isfinite(loss):
                raise UserError(f"fine-tuning loss became {loss} at pruning step "
                                f"{self.state.step}: lower prune.lr")
            losses.append(loss)
        self.state.iterations += steps
        return float(np.mean(losses)) if losses else float("nan")

    # --- one step and the loop ---------------------------------------------------------
    def step(self) -> Dict[str, Any]:
        scores = self.scores()
        removals = None
        if self.ctx.is_root:
            removals = plan_step(self.cfg, self.model, self.state.original, scores)
        removals = self.ctx.broadcast_object(removals)
        removed = sum(len(v) for v in removals.values())
        if removed:
            self.model = remove_units(self.model, removals)
        self.state.step += 1
        self._new_trainer()
        loss = self.finetune(self.cfg.prune.finetune_steps)
        self.state.data_epoch, self.state.data_step = self.stream.epoch, self.stream.step
        cost = model_cost(self.model)
        finished = removed == 0 or _reached(self.cfg, cost, self.state.original)
        if finished or self.state.step % self.cfg.prune.eval_every == 0:
            record = self.measure(removed)
        else:
            record = self._cost_record(removed, cost)
        record["finetune_loss"] = loss
        record["removed_per_layer"] = {str(k): len(v) for k, v in removals.items()}
        self.state.records.append(record)
        self.state.done = finished
        if removed == 0 and not _reached(self.cfg, cost, self.state.original):
            self.log.warning("no unit can be removed any more (prune.min_units): stopping "
                             "before the target")
        return record
