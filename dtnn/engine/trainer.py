"""The training loop: one step is forward -> loss -> backward (+ gradient exchange)
-> optimizer, and one epoch ends with a sharded evaluation, a metrics line and a
checkpoint.

Time-to-accuracy: ``evals_per_epoch = K`` evaluates after steps ``steps * j // K``
(j = 1..K) of every epoch; ``train_seconds`` is the time since ``fit`` started minus
the time spent evaluating (so evaluating more often does not make training look
slower), ``wall_seconds`` includes it.  ``time_to_accuracy`` is ``train_seconds`` at
the first evaluation whose accuracy reaches ``target_accuracy``; with
``stop_at_target`` training ends there (the partial epoch gets its record and
checkpoint; a resume continues with the next epoch).

Everything the loop needs is handed in already built (see ``engine.session``), so the
loop itself holds no policy about data sources, models or processes.  A step is
``DistributedOptimizer.step`` (forward, loss, backward with the gradient exchange,
update): the same call a user's own loop makes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from dtnn.data import BatchLoader, Dataset
from dtnn.engine.evaluate import Evaluation, evaluate
from dtnn.layers.loss import SoftmaxCrossEntropy
from dtnn.log import get_logger
from dtnn.parallel import interrupts
from dtnn.engine.guard import DivergenceGuard
from dtnn.engine.steptrace import StepTrace
from dtnn.errors import TrainingDiverged
from dtnn.parallel.optimizer import DistributedOptimizer


@dataclass
class EpochStats:
    loss_sum: float = 0.0
    correct: int = 0
    samples: int = 0
    seconds: float = 0.0
    evaluation: Optional[Evaluation] = None

    def add(self, loss: float, correct: int, n: int) -> None:
        self.loss_sum += loss * n
        self.correct += correct
        self.samples += n


@dataclass
class TrainState:
    """Where training stands; checkpointed so a resumed run continues exactly."""
    epoch: int = 0  # next epoch to run
    step: int = 0   # optimizer steps taken so far
    history: List[Dict[str, Any]] = field(default_factory=list)


class RunClock:
    """Seconds since training started, with evaluation time counted separately."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.eval_seconds = 0.0

    def wall(self) -> float:
        return time.perf_counter() - self.start

    def train(self) -> float:
        return self.wall() - self.eval_seconds


def eval_points(steps: int, evals_per_epoch: int) -> List[int]:
    """Step counts within an epoch after which to evaluate (the last is the epoch end)."""
    k = max(1, int(evals_per_epoch))
    return sorted({steps * j // k for j in range(1, k + 1)} - {0})


class Trainer:
    """Runs epochs of ``DistributedOptimizer`` steps with evaluations, records and
    callbacks.  ``optimizer`` is a ``DistributedOptimizer`` (built by the caller from
    the run's ``[dist]`` options) or a plain optimizer, which is then wrapped with the
    default exchange options and ``label_smoothing``."""

    def __init__(self, model, optimizer, schedule, loader: BatchLoader, ctx, *,
                 epochs: int, label_smoothing: float = 0.0, max_steps_per_epoch: int = 0,
                 eval_batch_size: int = 500, progress: bool = True,
                 evals_per_epoch: int = 1, target_accuracy: float = 0.0,
                 stop_at_target: bool = False, clip_grad_norm: float = 0.0,
                 guard: Optional[DivergenceGuard] = None,
                 on_epoch_end: Optional[Callable[["Trainer", Dict[str, Any]], None]] = None,
                 on_eval: Optional[Callable[["Trainer", Dict[str, Any]], None]] = None,
                 monitor=None):
        if not isinstance(optimizer, DistributedOptimizer):
            optimizer = DistributedOptimizer(
                optimizer, model, ctx=ctx, broadcast=False,
                loss=SoftmaxCrossEntropy(label_smoothing=label_smoothing))
        self.distributed = optimizer
        self.loss_fn = optimizer.loss_fn
        self.model, self.optimizer, self.schedule = model, optimizer.optimizer, schedule
        self.loader, self.ctx = loader, ctx
        self.epochs = epochs
        self.max_steps = max_steps_per_epoch
        self.eval_batch_size = eval_batch_size
        self.progress = progress and ctx.is_root
        self.on_epoch_end = on_epoch_end
        self.on_eval = on_eval
        self.evals_per_epoch = max(1, int(evals_per_epoch))
        self.target_accuracy = float(target_accuracy)
        self.stop_at_target = bool(stop_at_target)
        #: the gradient exchange (None in a single process)
        self.reducer = optimizer.exchange
        # clipping and the guard's check see the averaged gradients (after the exchange):
        # the same norm on every rank, so the replicas stay identical
        self.guard = guard
        if clip_grad_norm:
            optimizer.clip_grad_norm = float(clip_grad_norm)
        if guard is not None:
            optimizer.on_grad_norm = self._check_gradients
            # the guard acts on a non-finite norm only: with dist.defer_update the step
            # is deferred and each bucket is checked before its own update
            optimizer.grad_check_per_bucket = True
        #: (step, lr) of the last step, whose update dist.defer_update may leave pending
        self._deferred_of = (0, 0.0)
        self.state = TrainState()
        self.log = get_logger()
        self.clock = RunClock()
        self.time_to_accuracy: Optional[Dict[str, float]] = None
        self.stopped = False   # set when stop_at_target ended training early
        #: keep-best / early stopping / plateau lr (dtnn.engine.monitor.EvalMonitor)
        self.monitor = monitor
        self.early_stopped = False
        #: per-step rows for diagnosis, only with DTNN_STEP_TRACE set (engine.steptrace)
        self.trace = StepTrace.from_env(getattr(ctx, "rank", 0), self.reducer)

    # --- one step -------------------------------------------------------------------
    def _check_gradients(self, norm: float) -> None:
        # a deferred step's buckets are checked in the next forward pass (or the flush
        # at the epoch's end): name the step whose gradients they are
        step, lr = (self._deferred_of if self.distributed.deferred_check
                    else (self.state.step, self.optimizer.lr))
        self.guard.check_gradients(norm, step, lr)

    def train_step(self, xb: np.ndarray, yb: np.ndarray) -> tuple:
        self.optimizer.lr = self.schedule.lr_at(self.state.step) * (
            self.monitor.lr_factor if self.monitor is not None else 1.0)
        loss = self.distributed.step(self.model, xb, yb)
        self._deferred_of = (self.state.step, self.optimizer.lr)
        self.state.step += 1
        if self.trace is not None:
            self.trace.record()
        correct = int(np.count_nonzero(self.distributed.logits.argmax(axis=1) == yb))
        if self.guard is not None:
            self.guard.add_loss(loss, self.state.step, self.optimizer.lr, correct,
                                self.distributed.logits)
        return loss, correct

    # --- one epoch ------------------------------------------------------------------
    def train_epoch(self, epoch: int, eval_set: Optional[Dataset] = None) -> EpochStats:
        """One epoch; with ``eval_set``, evaluates at the epoch's eval points (the last
        evaluation is left in ``stats.evaluation``)."""
        steps = self.loader.steps_per_epoch
        if self.max_steps:
            steps = min(steps, self.max_steps)
        points = set(eval_points(steps, self.evals_per_epoch)) if eval_set is not None else set()
        stats = EpochStats()
        bar = self._progress_bar(steps, epoch)
        start = time.perf_counter()
        evaluated_before = self.clock.eval_seconds
        for i, (xb, yb) in enumerate(self.loader.epoch(epoch)):
            if i >= steps or self.stopped:
                break
            # a diverging step is reported once by the guard, not by numpy on every rank
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                loss, correct = self.train_step(xb, yb)
            interrupts.check()  # a Ctrl-C swallowed by some callback still ends the run
            stats.add(loss, correct, len(yb))
            if bar is not None:
                elapsed = time.perf_counter() - start
                bar.set_postfix(loss=f"{stats.loss_sum / stats.samples:.4f}",
                                acc=f"{stats.correct / stats.samples:.4f}",
                                sps=f"{stats.samples * self.ctx.size / max(elapsed, 1e-9):.0f}",
                                refresh=False)
                bar.update(1)
            if i + 1 in points:
                stats.evaluation = self._evaluate_point(eval_set, epoch, i + 1, steps)
        # every rank completes a deferred update here (dist.defer_update), so the
        # epoch-end callbacks (a checkpoint on rank 0 only, a barrier) read final values
        self.distributed.flush()
        # training only: _evaluate_point counts its time on the clock
        stats.seconds = time.perf_counter() - start - (self.clock.eval_seconds
                                                       - evaluated_before)
        if bar is not None:
            bar.close()
        return stats

    def _progress_bar(self, steps: int, epoch: int):
        if not self.progress:
            return None
        from tqdm import tqdm
        return tqdm(total=steps, desc=f"epoch {epoch + 1}/{self.epochs}", unit="step",
                    leave=False, dynamic_ncols=True)

    # --- evaluation -------------------------------------------------------------------
    def evaluate(self, ds: Dataset) -> Evaluation:
        """Loss and metrics on ``ds``, sharded over processes (``engine.evaluate``)."""
        # every rank completes a pending (deferred) update first: a rank whose shard is
        # empty runs no forward pass, which would leave its peers waiting for its part
        self.distributed.flush()
        return evaluate(self.model, ds, self.ctx, self.eval_batch_size)

    def _evaluate_point(self, eval_set: Dataset, epoch: int, done: int,
                        steps: int) -> Evaluation:
        """Evaluate, update time-to-accuracy, maybe stop; report it via ``on_eval``."""
        t0 = time.perf_counter()
        evaluation = self.evaluate(eval_set)
        self.clock.eval_seconds += time.perf_counter() - t0
        if self.trace is not None:
            self.trace.mark_eval()
        accuracy = evaluation.accuracy
        timing = self._timing()
        if (self.target_accuracy > 0 and self.time_to_accuracy is None
                and accuracy >= self.target_accuracy):
            self.time_to_accuracy = {"train_seconds": timing["train_seconds"],
                                     "wall_seconds": timing["wall_seconds"],
                                     "step": self.state.step}
            timing = self._timing(timing["wall_seconds"])
            if self.stop_at_target:
                self.stopped = True  # every rank sees the same reduced accuracy
        if self.on_eval is not None:
            self.on_eval(self, {"event": "eval", "epoch": epoch + 1,
                                "epoch_progress": epoch + done / max(1, steps),
                                "step": self.state.step, "eval_loss": evaluation.loss,
                                "eval_accuracy": accuracy, **timing})
        return evaluation

    def _timing(self, wall: Optional[float] = None) -> Dict[str, Any]:
        wall = self.clock.wall() if wall is None else wall
        out: Dict[str, Any] = {"wall_seconds": wall,
                               "train_seconds": wall - self.clock.eval_seconds}
        if self.target_accuracy > 0:
            tta = self.time_to_accuracy or {}
            out.update(target_accuracy=self.target_accuracy,
                       time_to_accuracy=tta.get("train_seconds"),
                       time_to_accuracy_wall=tta.get("wall_seconds"))
        return out

    # --- the whole run -----------------------------------------------------------------
    def fit(self, eval_set: Optional[Dataset]) -> List[Dict[str, Any]]:
        try:
            return self._fit(eval_set)
        except TrainingDiverged:
            # raised on every rank at the same point: a deferred update still in flight
            # (dist.defer_update) is completed without being applied, on every rank
            self.distributed.discard()
            raise

    def _fit(self, eval_set: Optional[Dataset]) -> List[Dict[str, Any]]:
        self.clock = RunClock()
        for epoch in range(self.state.epoch, self.epochs):
            stats = self.train_epoch(epoch, eval_set)
            epoch_end = time.perf_counter()   # the end-of-epoch work starts (counted in
            record = self._epoch_record(epoch, stats)   # train_seconds: it is not evaluation)
            evaluation = stats.evaluation
            if evaluation is not None:
                record.update(eval_loss=evaluation.loss, eval_accuracy=evaluation.accuracy,
                              eval_macro_f1=evaluation.report["macro"]["f1"])
            record.update(self._timing())
            self.state.epoch = epoch + 1
            self.state.history.append(record)
            self.log.info(_format_record(record))
            events = self.monitor.update(record) if self.monitor is not None else {}
            self.early_stopped = bool(events.get("stop"))
            if events.get("reduce_lr"):
                self.log.info(f"{self.monitor.watch.metric} has not improved for "
                              f"{self.monitor.plateau_patience} evaluation(s): lr x "
                              f"{self.monitor.lr_factor:g} of the schedule from now on")
            if self.on_epoch_end is not None:
                self.on_epoch_end(self, dict(record, evaluation=evaluation, events=events))
            if self.trace is not None:
                self.trace.note_epoch_end(time.perf_counter() - epoch_end)
            if self.stopped:
                self.log.info(f"eval accuracy reached {self.target_accuracy:g} after "
                              f"{self.time_to_accuracy['train_seconds']:.1f} s of training "
                              f"(step {self.state.step}): stopping (train.stop_at_target)")
                break
            if self.early_stopped:
                self.log.info(f"{self.monitor.watch.metric} has not improved for "
                              f"{self.monitor.stop_patience} evaluation(s): stopping "
                              f"(train.early_stopping_patience)")
                break
        if self.trace is not None:
            self.trace.save()
        return self.state.history

    def _epoch_record(self, epoch: int, stats: EpochStats) -> Dict[str, Any]:
        totals = self.ctx.allreduce_sum(
            np.array([stats.loss_sum, stats.correct, stats.samples], np.float64))
        seconds = float(self.ctx.allreduce_sum(np.array([stats.seconds]))[0] / self.ctx.size)
        return {"epoch": epoch + 1, "step": self.state.step, "lr": self.optimizer.lr,
                "train_loss": float(totals[0] / max(1.0, totals[2])),
                "train_accuracy": float(totals[1] / max(1.0, totals[2])),
                "epoch_seconds": seconds,
                "samples_per_second": float(totals[2] / max(seconds, 1e-9)),
                "processes": self.ctx.size}


def _format_record(r: Dict[str, Any]) -> str:
    text = (f"epoch {r['epoch']}: train loss {r['train_loss']:.4f} acc {r['train_accuracy']:.4f}"
            f" | {r['epoch_seconds']:.1f}s, {r['samples_per_second']:.0f} samples/s, lr {r['lr']:.4g}")
    if "eval_accuracy" in r:
        text += f" | eval loss {r['eval_loss']:.4f} acc {r['eval_accuracy']:.4f}"
    return text
