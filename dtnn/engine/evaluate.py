"""Evaluation: one function for the end-of-training report, ``dtnn eval`` and users.

``evaluate(model, ds, ctx)`` shards the samples over the processes (rank r takes
samples r, r + size, ...), sums the loss and the confusion matrix with one allreduce
and returns an ``Evaluation``; ``Evaluation.to_json()`` is the one report format
(``report.json`` of a run, ``dtnn eval --out``).

``evaluate_checkpoint(path)`` reads the checkpoint once (model, saved config,
normalisation statistics and class names) and evaluates it on a split of the saved
data source.  For the test split only the test files are read and the checkpoint's
stored normalisation is applied, so evaluating needs no training data.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from dtnn.data import Dataset
from dtnn.errors import UserError
from dtnn.layers.loss import SoftmaxCrossEntropy
from dtnn.metrics import confusion_matrix, format_confusion, format_report, report_from_confusion


@dataclass
class Evaluation:
    """Loss and classification metrics of a model on a dataset (over all processes)."""

    loss: float
    #: ``report_from_confusion``: accuracy, per-class and macro/weighted P/R/F1, support
    report: Dict[str, Any]
    #: (K, K) int64 counts, rows = true class, columns = predicted class
    confusion: np.ndarray
    classes: List[str]

    @property
    def accuracy(self) -> float:
        """Fraction of samples classified correctly."""
        return float(self.report["accuracy"])

    def to_dict(self) -> Dict[str, Any]:
        """What ``report.json`` holds: the report plus ``loss`` and ``confusion``."""
        return dict(self.report, loss=self.loss, confusion=self.confusion.tolist())

    def to_json(self) -> str:
        """``to_dict()`` as indented JSON text (the report file format)."""
        return json.dumps(self.to_dict(), indent=2) + "\n"

    def confusion_table(self) -> str:
        """The confusion matrix as a printable table with class names."""
        return format_confusion(self.confusion, self.classes)

    def text(self) -> str:
        """The report and the confusion matrix as printed tables."""
        return format_report(self.report) + "\n" + self.confusion_table()


def evaluate(model, ds: Dataset, ctx=None, batch_size: int = 500) -> Evaluation:
    """Loss and metrics of ``model`` (inference mode) on ``ds``.  Collective under MPI:
    every process calls it with the same dataset and gets the same result."""
    if ctx is None:
        from dtnn.parallel import get_context
        ctx = get_context()
    idx = np.arange(ctx.rank, len(ds.y), ctx.size)
    k = len(ds.classes)
    cm = np.zeros((k, k), np.int64)
    loss_sum = 0.0
    loss_fn = SoftmaxCrossEntropy()
    for start in range(0, len(idx), max(1, int(batch_size))):
        sel = idx[start:start + batch_size]
        xb, yb = ds.x[sel], ds.y[sel]
        logits = model.forward(xb, training=False)
        loss_sum += loss_fn.forward(logits, yb) * len(sel)
        cm += confusion_matrix(yb, logits.argmax(axis=1), k)
    totals = ctx.allreduce_sum(np.concatenate([[loss_sum], cm.ravel()]).astype(np.float64))
    cm = np.rint(totals[1:]).astype(np.int64).reshape(k, k)
    return Evaluation(float(totals[0] / max(1, cm.sum())), report_from_confusion(cm, ds.classes),
                      cm, list(ds.classes))


def evaluate_checkpoint(path: str, *, split: str = "test", overrides: Sequence[str] = (),
                        ctx=None, batch_size: Optional[int] = None) -> Evaluation:
    """Evaluate checkpoint ``path`` on ``split`` ("test" or "train") of the data source
    it was trained on; ``overrides`` (``"data.path=DIR"``, ...) change the saved config."""
    from dtnn.config import apply_dict, parse_override
    from dtnn.engine.session import config_from_meta
    from dtnn.io.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path)
    cfg = config_from_meta(ckpt.meta, path)
    for item in overrides:
        apply_dict(cfg, parse_override(item), f"--set {item}")
    ds = load_split(cfg, split, ckpt.meta.get("normalization"))
    if ds.x.shape[1:] != ckpt.model.input_shape:
        raise UserError(f"{path}: model expects inputs {ckpt.model.input_shape}, "
                        f"data has {ds.x.shape[1:]}")
    saved = ckpt.meta.get("classes")  # the names the model was trained with
    if saved and (len(ds.y) == 0 or int(ds.y.max()) < len(saved)):
        ds.classes = [str(c) for c in saved]
    return evaluate(ckpt.model, ds, ctx, batch_size or cfg.train.eval_batch_size)


def load_split(cfg, split: str, normalization: Optional[Dict[str, Any]]) -> Dataset:
    """One split of ``cfg.data``, normalised as in training.  The test split with stored
    statistics reads only the test files; otherwise the training data is loaded too
    (the held-out validation split and fresh statistics need it)."""
    from dtnn.data import apply_normalization, load_dataset, resolve_source

    d = cfg.data
    if split == "test" and (normalization is not None or not d.normalize):
        source, path = resolve_source(d.source, d.path or None)
        _, test = load_dataset(source, path, only="test", **d.options)
        if test is None:
            raise UserError(f"data source '{d.source}' has no test split")
        if d.normalize:
            apply_normalization(test, normalization)
        return test
    from dtnn.engine.session import load_data
    data = load_data(cfg, normalization)
    ds = {"test": data.test, "train": data.train}.get(split)
    if ds is None:
        raise UserError(f"data source '{d.source}' has no {split} split")
    return ds
