"""Watching an evaluation metric across epochs: keep-the-best, early stopping and the
plateau learning-rate reduction (as Keras' ModelCheckpoint(save_best_only),
EarlyStopping and ReduceLROnPlateau, or torch's ReduceLROnPlateau).

``EvalMonitor.update(record)`` is called with each epoch's metrics record (which holds
``eval_loss``, ``eval_accuracy``, ``eval_macro_f1``); it returns what happened. Its state
is checkpointed, so a resumed run keeps its best value, patience counters and lr factor.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional

#: metric -> True if larger is better
HIGHER_IS_BETTER = {"eval_loss": False, "eval_accuracy": True, "eval_macro_f1": True}


@dataclass
class Tracker:
    """Best value of one metric and evaluations since it last improved."""
    metric: str
    best: Optional[float] = None
    since_best: int = 0

    def update(self, value: float) -> bool:
        better = (self.best is None or
                  (value > self.best if HIGHER_IS_BETTER[self.metric] else value < self.best))
        if better:
            self.best, self.since_best = float(value), 0
        else:
            self.since_best += 1
        return better


class EvalMonitor:
    def __init__(self, keep_best: str = "", monitor: str = "eval_loss",
                 early_stopping_patience: int = 0, plateau_patience: int = 0,
                 plateau_factor: float = 0.1, min_lr_factor: float = 0.0):
        self.keep_best = Tracker(keep_best) if keep_best else None
        self.watch = Tracker(monitor)
        self.stop_patience = int(early_stopping_patience)
        self.plateau_patience = int(plateau_patience)
        self.plateau_factor = float(plateau_factor)
        self.min_lr_factor = float(min_lr_factor)
        self.lr_factor = 1.0
        self._since_reduce = 0

    @property
    def active(self) -> bool:
        return bool(self.keep_best or self.stop_patience or self.plateau_patience)

    def update(self, record: Dict[str, Any]) -> Dict[str, bool]:
        """Events of one epoch-end evaluation: new best (for keep_best), lr reduced,
        stop (early stopping). Records without evaluation metrics change nothing."""
        events = {"best": False, "reduce_lr": False, "stop": False}
        if self.watch.metric not in record:
            return events
        if self.keep_best is not None and self.keep_best.metric in record:
            events["best"] = self.keep_best.update(record[self.keep_best.metric])
        improved = self.watch.update(record[self.watch.metric])
        self._since_reduce = 0 if improved else self._since_reduce + 1
        if self.plateau_patience and self._since_reduce >= self.plateau_patience:
            new = max(self.lr_factor * self.plateau_factor, self.min_lr_factor)
            events["reduce_lr"] = new < self.lr_factor
            self.lr_factor, self._since_reduce = new, 0
        if self.stop_patience and self.watch.since_best >= self.stop_patience:
            events["stop"] = True
        return events

    def state_dict(self) -> Dict[str, Any]:
        return {"watch": asdict(self.watch), "lr_factor": self.lr_factor,
                "since_reduce": self._since_reduce,
                "keep_best": asdict(self.keep_best) if self.keep_best else {}}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        w = state.get("watch") or {}
        if w.get("metric") == self.watch.metric:
            self.watch.best, self.watch.since_best = w.get("best"), int(w.get("since_best", 0))
        kb = state.get("keep_best") or {}
        if self.keep_best is not None and kb.get("metric") == self.keep_best.metric:
            self.keep_best.best = kb.get("best")
            self.keep_best.since_best = int(kb.get("since_best", 0))
        self.lr_factor = float(state.get("lr_factor", 1.0))
        self._since_reduce = int(state.get("since_reduce", 0))


def from_config(cfg) -> EvalMonitor:
    """The monitor described by ``output.keep_best``, ``train.monitor``,
    ``train.early_stopping_patience`` and ``schedule.plateau_*``."""
    lr = cfg.optim.lr
    return EvalMonitor(keep_best=cfg.output.keep_best, monitor=cfg.train.monitor,
                       early_stopping_patience=cfg.train.early_stopping_patience,
                       plateau_patience=cfg.schedule.plateau_patience,
                       plateau_factor=cfg.schedule.plateau_factor,
                       min_lr_factor=(cfg.schedule.min_lr / lr) if lr > 0 else 0.0)
