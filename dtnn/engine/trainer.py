"""The training loop: one step is forward -> loss -> backward (+ gradient exchange)
-> optimizer, and one epoch ends with a sharded evaluation, a metrics line and a
checkpoint.

Everything the loop needs is handed in already built (see ``engine.session``), so the
loop itself holds no policy about data sources, models or processes.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from dtnn.data import BatchLoader, Dataset
from dtnn.layers.loss import SoftmaxCrossEntropy
from dtnn.log import get_logger
from dtnn.metrics import confusion_matrix, report_from_confusion


@dataclass
class EpochStats:
    loss_sum: float = 0.0
    correct: int = 0
    samples: int = 0
    seconds: float = 0.0

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


class Trainer:
    def __init__(self, model, optimizer, schedule, loader: BatchLoader, ctx, *,
                 epochs: int, label_smoothing: float = 0.0, max_steps_per_epoch: int = 0,
                 eval_batch_size: int = 500, progress: bool = True,
                 on_epoch_end: Optional[Callable[["Trainer", Dict[str, Any]], None]] = None):
        self.model, self.optimizer, self.schedule = model, optimizer, schedule
        self.loader, self.ctx = loader, ctx
        self.epochs = epochs
        self.loss_fn = SoftmaxCrossEntropy(label_smoothing=label_smoothing)
        self.max_steps = max_steps_per_epoch
        self.eval_batch_size = eval_batch_size
        self.progress = progress and ctx.is_root
        self.on_epoch_end = on_epoch_end
        self.reducer = ctx.make_reducer(model)
        self.state = TrainState()
        self.log = get_logger()

    # --- one step -------------------------------------------------------------------
    def train_step(self, xb: np.ndarray, yb: np.ndarray) -> tuple:
        logits = self.model.forward(xb, training=True)
        loss = self.loss_fn.forward(logits, yb)
        dlogits = self.loss_fn.backward()
        if self.reducer is None:
            self.model.backward(dlogits)
        else:
            self.reducer.start_step()
            self.model.backward(dlogits, on_grads_ready=self.reducer.on_grads_ready)
            self.reducer.finish_step()
        self.optimizer.lr = self.schedule.lr_at(self.state.step)
        self.optimizer.step()
        self.state.step += 1
        correct = int(np.count_nonzero(logits.argmax(axis=1) == yb))
        return loss, correct

    # --- one epoch ------------------------------------------------------------------
    def train_epoch(self, epoch: int) -> EpochStats:
        steps = self.loader.steps_per_epoch
        if self.max_steps:
            steps = min(steps, self.max_steps)
        stats = EpochStats()
        bar = self._progress_bar(steps, epoch)
        start = time.perf_counter()
        for i, (xb, yb) in enumerate(self.loader.epoch(epoch)):
            if i >= steps:
                break
            loss, correct = self.train_step(xb, yb)
            if not np.isfinite(loss):
                from dtnn.errors import UserError
                raise UserError(f"loss became {loss} at step {self.state.step}: lower optim.lr")
            stats.add(loss, correct, len(yb))
            if bar is not None:
                elapsed = time.perf_counter() - start
                bar.set_postfix(loss=f"{stats.loss_sum / stats.samples:.4f}",
                                acc=f"{stats.correct / stats.samples:.4f}",
                                sps=f"{stats.samples * self.ctx.size / max(elapsed, 1e-9):.0f}",
                                refresh=False)
                bar.update(1)
        stats.seconds = time.perf_counter() - start
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
    def evaluate(self, ds: Dataset) -> Dict[str, Any]:
        """Loss and metrics on ``ds``, sharded over processes and summed."""
        rank, size = self.ctx.rank, self.ctx.size
        idx = np.arange(rank, len(ds.y), size)
        num_classes = len(ds.classes)
        cm = np.zeros((num_classes, num_classes), np.int64)
        loss_sum = 0.0
        loss_fn = SoftmaxCrossEntropy()
        for start in range(0, len(idx), self.eval_batch_size):
            sel = idx[start:start + self.eval_batch_size]
            xb, yb = ds.x[sel], ds.y[sel]
            logits = self.model.forward(xb, training=False)
            loss_sum += loss_fn.forward(logits, yb) * len(sel)
            cm += confusion_matrix(yb, logits.argmax(axis=1), num_classes)
        totals = self.ctx.allreduce_sum(np.concatenate([[loss_sum], cm.ravel()]).astype(np.float64))
        cm = np.rint(totals[1:]).astype(np.int64).reshape(num_classes, num_classes)
        report = report_from_confusion(cm, ds.classes)
        return {"loss": float(totals[0] / max(1, cm.sum())), "report": report, "confusion": cm}

    # --- the whole run -----------------------------------------------------------------
    def fit(self, eval_set: Optional[Dataset]) -> List[Dict[str, Any]]:
        for epoch in range(self.state.epoch, self.epochs):
            stats = self.train_epoch(epoch)
            record = self._epoch_record(epoch, stats)
            evaluation = None
            if eval_set is not None:
                evaluation = self.evaluate(eval_set)
                record.update(eval_loss=evaluation["loss"],
                              eval_accuracy=evaluation["report"]["accuracy"],
                              eval_macro_f1=evaluation["report"]["macro"]["f1"])
            self.state.epoch = epoch + 1
            self.state.history.append(record)
            self.log.info(_format_record(record))
            if self.on_epoch_end is not None:
                self.on_epoch_end(self, dict(record, evaluation=evaluation))
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
