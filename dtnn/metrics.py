"""Classification metrics derived from a confusion matrix.

The confusion matrix (rows = true class, columns = predicted class, int64 counts) is the
sufficient statistic for everything here, and it is additive: a distributed evaluation
sums the ranks' matrices (one allreduce of K*K integers) and calls
``report_from_confusion`` once.

Conventions (identical to scikit-learn with ``labels=range(K), zero_division=0``):

* precision_c = TP / (TP + FP), recall_c = TP / (TP + FN), F1_c = 2PR / (P + R), each
  0 when its denominator is 0 (no warning);
* macro averages are plain means over **all K classes**, including classes that were
  neither present nor predicted; macro F1 is the mean of per-class F1 (not the F1 of
  macro precision and recall); weighted averages weight by support.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np


def _labels(name: str, y, num_classes: int) -> np.ndarray:
    arr = np.asarray(y)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        if not np.all(arr == np.round(arr)):
            raise ValueError(f"{name} must hold integer class indices")
    arr = arr.astype(np.int64, copy=False)
    if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
        bad = int(arr.min()) if arr.min() < 0 else int(arr.max())
        raise ValueError(f"{name} has label {bad}, out of range for {num_classes} classes")
    return arr


def confusion_matrix(y_true, y_pred, num_classes: int) -> np.ndarray:
    """(K, K) int64 counts; ``cm[t, p]`` = samples of true class t predicted as p."""
    k = int(num_classes)
    if k < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    t = _labels("y_true", y_true, k)
    p = _labels("y_pred", y_pred, k)
    if len(t) != len(p):
        raise ValueError(f"y_true has {len(t)} entries but y_pred has {len(p)}")
    return np.bincount(t * k + p, minlength=k * k).astype(np.int64).reshape(k, k)


def _check_cm(cm) -> np.ndarray:
    cm = np.asarray(cm)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1]:
        raise ValueError(f"confusion matrix must be square, got shape {cm.shape}")
    return cm.astype(np.int64, copy=False)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape, np.float64)
    np.divide(num, den, out=out, where=den != 0)
    return out


def accuracy(y_true, y_pred) -> float:
    """Fraction of equal entries (0.0 for empty input)."""
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if t.shape != p.shape:
        raise ValueError(f"y_true has shape {t.shape} but y_pred has {p.shape}")
    return float(np.mean(t == p)) if t.size else 0.0


def accuracy_from_confusion(cm) -> float:
    cm = _check_cm(cm)
    total = cm.sum()
    return float(np.trace(cm) / total) if total else 0.0


def precision_recall_f1(cm) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-class ``(precision, recall, f1, support)`` from a confusion matrix."""
    cm = _check_cm(cm)
    tp = np.diag(cm).astype(np.float64)
    predicted = cm.sum(axis=0)
    support = cm.sum(axis=1)
    precision = _safe_div(tp, predicted)
    recall = _safe_div(tp, support)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    return precision, recall, f1, support.astype(np.int64)


def macro_f1(cm) -> float:
    return float(np.mean(precision_recall_f1(cm)[2]))


def report_from_confusion(cm, classes: Optional[Sequence[str]] = None) -> Dict[str, object]:
    """JSON-able report: accuracy, macro/weighted averages, per-class rows and the matrix.

    Keys: ``num_samples``, ``accuracy``, ``macro`` and ``weighted`` (each
    ``{"precision", "recall", "f1"}``), ``per_class`` (list in class order of
    ``{"class", "precision", "recall", "f1", "support"}``), ``classes``, ``confusion``.
    """
    cm = _check_cm(cm)
    k = cm.shape[0]
    names = [str(c) for c in classes] if classes is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise ValueError(f"{len(names)} class names for a {k}x{k} confusion matrix")
    p, r, f, s = precision_recall_f1(cm)
    total = int(s.sum())
    w = s / total if total else np.zeros(k)
    return {
        "num_samples": total,
        "accuracy": accuracy_from_confusion(cm),
        "macro": {"precision": float(p.mean()), "recall": float(r.mean()),
                  "f1": float(f.mean())},
        "weighted": {"precision": float(w @ p), "recall": float(w @ r), "f1": float(w @ f)},
        "per_class": [{"class": names[i], "precision": float(p[i]), "recall": float(r[i]),
                       "f1": float(f[i]), "support": int(s[i])} for i in range(k)],
        "classes": names,
        "confusion": cm.tolist(),
    }


def classification_report(y_true, y_pred, classes: Sequence[str]) -> Dict[str, object]:
    """``report_from_confusion`` of the labels; ``classes`` fixes K and the names."""
    return report_from_confusion(confusion_matrix(y_true, y_pred, len(classes)), classes)


# --- text formatting -------------------------------------------------------------------

def abbreviate(name: str, width: int) -> str:
    """``name`` cut to ``width`` characters, marking the cut with a trailing '.'."""
    name = str(name)
    if len(name) <= width:
        return name
    if width <= 1:
        return name[:width]
    return name[:width - 1] + "."


def format_confusion(cm, classes: Optional[Sequence[str]] = None, label_width: int = 12) -> str:
    """Aligned text table (rows = true class, columns = predicted class).

    Row labels are cut to ``label_width`` characters; column headers are cut to the
    column width (at least 5 characters or the widest count).
    """
    cm = _check_cm(cm)
    k = cm.shape[0]
    names = [str(c) for c in classes] if classes is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise ValueError(f"{len(names)} class names for a {k}x{k} confusion matrix")
    col = max(5, len(str(int(cm.max()))) if cm.size else 1)
    lab = max(len("true\\pred"), min(label_width, max((len(n) for n in names), default=0)))
    lines = ["true\\pred".ljust(lab) + "".join(" " + abbreviate(n, col).rjust(col)
                                               for n in names)]
    for i in range(k):
        lines.append(abbreviate(names[i], lab).ljust(lab)
                     + "".join(" " + str(int(v)).rjust(col) for v in cm[i]))
    return "\n".join(lines)


def format_report(report: Dict[str, object], label_width: int = 16) -> str:
    """Per-class precision/recall/F1/support table with macro and weighted averages."""
    rows: List[Tuple[str, float, float, float, int]] = [
        (r["class"], r["precision"], r["recall"], r["f1"], r["support"])
        for r in report["per_class"]]
    total = int(report["num_samples"])
    lab = max(len("weighted avg"),
              min(label_width, max((len(str(r[0])) for r in rows), default=0)))
    head = f"{'':<{lab}} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>9}"
    lines = [head]
    for name, p, r, f, s in rows:
        lines.append(f"{abbreviate(name, lab):<{lab}} {p:9.4f} {r:9.4f} {f:9.4f} {s:9d}")
    lines.append("")
    for key, title in (("macro", "macro avg"), ("weighted", "weighted avg")):
        m = report[key]
        lines.append(f"{title:<{lab}} {m['precision']:9.4f} {m['recall']:9.4f} "
                     f"{m['f1']:9.4f} {total:9d}")
    lines.append(f"{'accuracy':<{lab}} {'':9} {'':9} {report['accuracy']:9.4f} {total:9d}")
    return "\n".join(lines)
