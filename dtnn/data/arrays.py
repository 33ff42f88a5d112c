"""Turning named arrays (from an .npz or HDF5 file) into checked ``Dataset`` objects.

Both container formats use the same keys:

* ``x_train`` and ``y_train`` (required), ``x_test`` and ``y_test`` (optional, together);
* ``classes`` or ``class_names`` (optional): class names, one string per class.

Accepted sample layouts: ``(N, H, W)`` (a channel axis is added), ``(N, C, H, W)``,
``(N, H, W, C)`` with ``channels_last=True``, or ``(N, F)`` feature vectors.  uint8
samples are scaled to [0, 1]; other numeric types are converted to float32 as they are.
Labels are integer class indices of shape ``(N,)`` (``(N, 1)`` is accepted too).
"""
from __future__ import annotations

from typing import Callable, Iterable, List, Optional, Tuple

import numpy as np

from dtnn.data._opts import ClassesOption, as_bool, as_classes
from dtnn.data.dataset import Dataset, default_class_names, pixels_to_float
from dtnn.errors import DataError

KEYS = ("x_train", "y_train", "x_test", "y_test")
#: arrays holding class names (the first present wins); stored in checkpoints and shown
#: by eval, predict and the serve page
CLASS_KEYS = ("classes", "class_names")

#: returns the array stored under a key, or None if the key is absent
Fetch = Callable[[str], Optional[np.ndarray]]


def _samples(where: str, key: str, arr: np.ndarray, channels_last: Optional[bool]) -> np.ndarray:
    if arr.dtype.kind not in "uifb":
        raise DataError(f"{where}: {key} has non-numeric dtype {arr.dtype}")
    if arr.ndim == 2:
        out = arr
    elif arr.ndim == 3:
        out = arr[:, None, :, :]
    elif arr.ndim == 4:
        if channels_last:
            out = arr.transpose(0, 3, 1, 2)
        elif channels_last is None and arr.shape[3] in (1, 3, 4) and arr.shape[1] > 4:
            raise DataError(f"{where}: {key} has shape {arr.shape}, which looks like "
                            "(N, H, W, C); pass channels_last=True (or channels_last=False "
                            "if it really is (N, C, H, W))")
        else:
            out = arr
    else:
        raise DataError(f"{where}: {key} must be (N, H, W), (N, C, H, W), (N, H, W, C) or "
                        f"(N, F), got shape {arr.shape}")
    x = np.ascontiguousarray(pixels_to_float(out))
    if x.dtype.kind == "f" and arr.dtype.kind == "f" and not np.isfinite(x).all():
        raise DataError(f"{where}: {key} contains NaN or infinite values")
    return x


def _labels(where: str, key: str, arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        hint = " (one-hot? store class indices instead)" if arr.ndim == 2 else ""
        raise DataError(f"{where}: {key} must be a 1-D array of class indices, got shape "
                        f"{arr.shape}{hint}")
    if arr.dtype.kind in "iu":
        y = arr.astype(np.int64)
    elif arr.dtype.kind == "f":
        if not np.isfinite(arr).all() or np.any(arr != np.round(arr)):
            raise DataError(f"{where}: {key} must hold whole-number class indices")
        y = arr.astype(np.int64)
    else:
        raise DataError(f"{where}: {key} must hold integer class indices, got dtype {arr.dtype}")
    if len(y) and y.min() < 0:
        raise DataError(f"{where}: {key} has a negative label ({int(y.min())})")
    return y


def _class_names(where: str, raw) -> List[str]:
    arr = np.asarray(raw)
    if arr.ndim != 1:
        raise DataError(f"{where}: classes must be a 1-D array of names, got shape {arr.shape}")
    return [v.decode("utf-8") if isinstance(v, bytes) else str(v) for v in arr.tolist()]


def _check_contiguous(where: str, pairs) -> None:
    """Without class names, the labels must be exactly 0..K-1 (each one used): one
    stray label (99 among ten classes) would otherwise make a 100-class model."""
    present = np.unique(np.concatenate([y for _, y in pairs]))
    if len(present) == 0 or len(present) == int(present[-1]) + 1:
        return
    missing = np.setdiff1d(np.arange(int(present[-1]) + 1), present)
    gap = (f"{int(missing[0])}" if len(missing) == 1 else
           f"{int(missing[0])}..{int(missing[-1])}" if len(missing) == missing[-1] - missing[0] + 1
           else f"{len(missing)} values below it")
    raise DataError(f"{where}: labels go up to {int(present[-1])} but {gap} never "
                    f"appear{'s' if len(missing) == 1 else ''}: labels must be the class "
                    f"indices 0..K-1, or the file must name its classes (a 'classes' array)")


def datasets_from_arrays(where: str, fetch: Fetch, available: Iterable[str], *,
                         channels_last=None, classes: ClassesOption = None,
                         name: str = "dataset", source: str = "arrays",
                         only: Optional[str] = None) -> Tuple[Optional[Dataset],
                                                              Optional[Dataset]]:
    """Build ``(train, test | None)``; ``where`` (the file path) prefixes every error.
    ``only="test"``: read just the test arrays and return ``(None, test)``."""
    available = sorted(available)
    cl = None if channels_last is None else as_bool("channels_last", channels_last)
    if only == "test":
        return None, _test_only(where, fetch, available, cl, classes, name, source)
    for key in ("x_train", "y_train"):
        if key not in available:
            listed = ", ".join(available) or "nothing"
            raise DataError(f"{where}: missing required array '{key}' (found: {listed})")
    has_test = [k in available for k in ("x_test", "y_test")]
    if any(has_test) and not all(has_test):
        present, absent = ("x_test", "y_test") if has_test[0] else ("y_test", "x_test")
        raise DataError(f"{where}: has '{present}' but not '{absent}'")

    pairs = []
    for split in ("train", "test") if all(has_test) else ("train",):
        xk, yk = f"x_{split}", f"y_{split}"
        x = _samples(where, xk, fetch(xk), cl)
        y = _labels(where, yk, fetch(yk))
        if len(x) != len(y):
            raise DataError(f"{where}: {xk} has {len(x)} samples but {yk} has {len(y)} labels")
        pairs.append((x, y))
    if len(pairs) == 2 and pairs[0][0].shape[1:] != pairs[1][0].shape[1:]:
        raise DataError(f"{where}: x_test samples are {pairs[1][0].shape[1:]} but x_train "
                        f"samples are {pairs[0][0].shape[1:]}")

    names = as_classes("classes", classes)
    for key in CLASS_KEYS:
        if names is None and key in available:
            names = _class_names(where, fetch(key))
    if names is None:
        _check_contiguous(where, pairs)
        names = default_class_names(*(y for _, y in pairs))
    for (x, y), key in zip(pairs, ("y_train", "y_test")):
        if len(y) and int(y.max()) >= len(names):
            raise DataError(f"{where}: {key} has label {int(y.max())}, out of range for "
                            f"{len(names)} classes")
    meta = {"source": source, "path": where}
    train = Dataset(pairs[0][0], pairs[0][1], names, name, dict(meta))
    test = (Dataset(pairs[1][0], pairs[1][1], names, f"{name}-test", dict(meta))
            if len(pairs) == 2 else None)
    return train, test


def _test_only(where: str, fetch: Fetch, available: List[str], cl: Optional[bool],
               classes: ClassesOption, name: str, source: str) -> Dataset:
    for key in ("x_test", "y_test"):
        if key not in available:
            listed = ", ".join(available) or "nothing"
            raise DataError(f"{where}: no test split (missing array '{key}'; found: {listed})")
    x = _samples(where, "x_test", fetch("x_test"), cl)
    y = _labels(where, "y_test", fetch("y_test"))
    if len(x) != len(y):
        raise DataError(f"{where}: x_test has {len(x)} samples but y_test has {len(y)} labels")
    names = as_classes("classes", classes)
    if names is None and "classes" in available:
        names = _class_names(where, fetch("classes"))
    if names is None:
        names = default_class_names(y)
    if len(y) and int(y.max()) >= len(names):
        raise DataError(f"{where}: y_test has label {int(y.max())}, out of range for "
                        f"{len(names)} classes")
    return Dataset(x, y, names, f"{name}-test", {"source": source, "path": where})
