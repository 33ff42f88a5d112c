"""The in-memory ``Dataset``, the loader registry, normalisation and stratified splits.

Loaders (one module each: ``idx``, ``npz``, ``hdf5``, ``digits``, ``synthetic``)
register a function ``fn(path, **options) -> (train, test_or_None)`` in ``DATASETS``;
``load_dataset`` picks one by name and checks its options against the signature.

Conventions every loader follows:

* ``x`` is float32, C-contiguous, ``(N, C, H, W)`` for images or ``(N, F)`` for
  feature vectors; uint8 pixels are scaled to ``[0, 1]`` at load time;
* ``y`` is int64 in ``[0, len(classes))``;
* problems with the data raise ``DataError``, bad options raise ``ConfigError``, and
  both messages are a single line naming the file (or dataset) and the problem.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from dtnn.errors import ConfigError, DataError
from dtnn.registry import Registry

#: name -> loader function ``fn(path, **options) -> (train, test | None)``
DATASETS = Registry("dataset")


@dataclass
class Dataset:
    """Samples ``x`` (float32, (N, C, H, W) or (N, F)) with labels ``y`` (int64, (N,))."""

    x: np.ndarray
    y: np.ndarray
    classes: List[str]
    name: str = "dataset"
    #: free-form provenance (source, path, options); JSON-able
    meta: Dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        x = np.asarray(self.x)
        y = np.asarray(self.y)
        if x.ndim not in (2, 4):
            raise DataError(f"{self.name}: samples must be (N, F) or (N, C, H, W), got shape {x.shape}")
        if y.ndim != 1:
            raise DataError(f"{self.name}: labels must be a 1-D array, got shape {y.shape}")
        if len(x) != len(y):
            raise DataError(f"{self.name}: {len(x)} samples but {len(y)} labels")
        if not np.issubdtype(y.dtype, np.integer):
            raise DataError(f"{self.name}: labels must be integers, got dtype {y.dtype}")
        self.classes = [str(c) for c in self.classes]
        if not self.classes:
            raise DataError(f"{self.name}: no class names")
        if len(y):
            lo, hi = int(y.min()), int(y.max())
            if lo < 0 or hi >= len(self.classes):
                bad = lo if lo < 0 else hi
                raise DataError(f"{self.name}: label {bad} out of range for "
                                f"{len(self.classes)} classes")
        self.x = np.ascontiguousarray(x, dtype=np.float32)
        self.y = np.ascontiguousarray(y, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.y)

    @property
    def num_classes(self) -> int:
        """Number of classes (``len(classes)``)."""
        return len(self.classes)

    @property
    def sample_shape(self) -> Tuple[int, ...]:
        """Shape of one sample, e.g. ``(1, 28, 28)`` or ``(64,)``."""
        return tuple(int(d) for d in self.x.shape[1:])

    def subset(self, indices, name: Optional[str] = None) -> "Dataset":
        """A new dataset with copies of the selected samples (in the given order)."""
        idx = np.asarray(indices, dtype=np.int64)
        return Dataset(self.x[idx], self.y[idx], list(self.classes),
                       name or self.name, dict(self.meta))

    def class_counts(self) -> np.ndarray:
        """Samples per class (int64, length ``num_classes``)."""
        return np.bincount(self.y, minlength=self.num_classes)

    def summary(self) -> str:
        """One line: name, sample count, sample shape, classes."""
        return (f"{self.name}: {len(self)} samples of shape {self.sample_shape}, "
                f"{self.num_classes} classes")


# --- loading ---------------------------------------------------------------------------

def _ensure_loaders() -> None:
    # the loader modules register themselves on import
    from dtnn.data import digits, hdf5, idx, npz, synthetic  # noqa: F401


def load_dataset(source: str, path: Optional[str] = None, *, only: Optional[str] = None,
                 **options) -> Tuple[Optional[Dataset], Optional[Dataset]]:
    """Load ``(train, test)`` from a registered source; ``test`` may be ``None``.

    ``source`` is one of ``DATASETS.names()``: idx, fashion-mnist, npz, hdf5, digits,
    synthetic.  Unknown options raise ``ConfigError`` listing the accepted ones.
    ``only="test"`` returns ``(None, test)``; loaders that keep the splits in separate
    files or arrays (a keyword ``only``) then read no training data at all.
    """
    _ensure_loaders()
    fn = DATASETS.get(source)
    params = inspect.signature(fn).parameters
    accepted = [n for n, p in params.items()
                if p.kind is inspect.Parameter.KEYWORD_ONLY and n != "only"]
    for key in options:
        if key not in accepted:
            listed = ", ".join(accepted) or "none"
            raise ConfigError(f"dataset '{source}' has no option '{key}' (options: {listed})")
    if only is None:
        return fn(path, **options)
    if only != "test":
        raise ValueError(f"load_dataset: only must be None or 'test', got {only!r}")
    if "only" in params:
        return fn(path, only=only, **options)
    return None, fn(path, **options)[1]


# --- normalisation ---------------------------------------------------------------------

NORMALIZE_MODES = ("standard", "none")
_CHUNK = 4096  # samples per pass when computing statistics (bounds the float64 temporaries)


def _stat_axes(x: np.ndarray) -> Tuple[int, ...]:
    # per channel for images, per feature for (N, F)
    return (0, 2, 3) if x.ndim == 4 else (0,)


def _broadcast(v: np.ndarray, ndim: int) -> np.ndarray:
    v = np.asarray(v, dtype=np.float32)
    return v.reshape(1, -1, 1, 1) if ndim == 4 else v.reshape(1, -1)


def compute_stats(ds: Dataset, mode: str = "standard") -> Dict[str, object]:
    """Normalisation statistics of ``ds`` (JSON-able dict), without changing it."""
    if mode not in NORMALIZE_MODES:
        raise ConfigError(f"unknown normalisation mode '{mode}' (choose from: "
                          f"{', '.join(NORMALIZE_MODES)})")
    x = ds.x
    width = x.shape[1]
    if mode == "none" or len(x) == 0:
        return {"mode": mode, "mean": [0.0] * width, "std": [1.0] * width}
    axes = _stat_axes(x)
    per = len(x) * (x.shape[2] * x.shape[3] if x.ndim == 4 else 1)
    total = np.zeros(width, np.float64)
    for lo in range(0, len(x), _CHUNK):
        total += x[lo:lo + _CHUNK].sum(axis=axes, dtype=np.float64)
    mean = total / per
    sq = np.zeros(width, np.float64)
    mean_b = mean.reshape((1, -1, 1, 1) if x.ndim == 4 else (1, -1))
    for lo in range(0, len(x), _CHUNK):
        d = x[lo:lo + _CHUNK].astype(np.float64) - mean_b
        np.multiply(d, d, out=d)
        sq += d.sum(axis=axes)
    std = np.sqrt(sq / per)
    std = np.where(std < 1e-8, 1.0, std)  # constant channels are left unscaled
    return {"mode": mode, "mean": [float(v) for v in mean], "std": [float(v) for v in std]}


def _parse_stats(stats) -> Tuple[str, np.ndarray, np.ndarray]:
    try:
        mode = stats["mode"]
        mean = np.asarray(stats["mean"], dtype=np.float64)
        std = np.asarray(stats["std"], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"normalisation stats are malformed ({e!r}); expected keys "
                          "mode, mean, std") from None
    if mode not in NORMALIZE_MODES:
        raise ConfigError(f"unknown normalisation mode '{mode}' in stored stats")
    if mean.ndim != 1 or mean.shape != std.shape:
        raise ConfigError("normalisation stats: mean and std must be lists of equal length")
    if np.any(std <= 0) or not np.all(np.isfinite(std)) or not np.all(np.isfinite(mean)):
        raise ConfigError("normalisation stats: std must be positive and all values finite")
    return mode, mean, std


def normalize_array(x: np.ndarray, stats: Dict[str, object], name: str = "input",
                    out: Optional[np.ndarray] = None) -> np.ndarray:
    """Preprocess a raw batch exactly like training data: uint8 -> [0, 1], then ``stats``.

    ``x`` is (N, C, H, W) or (N, F); returns float32 (``out`` may be ``x`` itself when it
    is a writable float32 array).  For predict/serve.
    """
    mode, mean, std = _parse_stats(stats)
    x = np.asarray(x)
    if x.ndim not in (2, 4):
        raise DataError(f"{name}: samples must be (N, F) or (N, C, H, W), got shape {x.shape}")
    width = x.shape[1]
    if mean.shape != (width,):
        what = "channels" if x.ndim == 4 else "features"
        raise DataError(f"{name}: has {width} {what} but the normalisation stats are "
                        f"for {mean.size}")
    if out is None:
        out = pixels_to_float(x)
        if out is x:
            out = x.copy()
    elif x.dtype == np.uint8:
        np.divide(x, np.float32(255.0), out=out, dtype=np.float32)
    elif out is not x:
        out[...] = x
    if mode != "none":
        out -= _broadcast(mean, x.ndim)
        out *= _broadcast(1.0 / std, x.ndim)
    return out


def apply_normalization(ds: Dataset, stats: Dict[str, object]) -> Dataset:
    """Standardise ``ds.x`` in place with stored ``stats``; returns ``ds``.

    Used for validation/test sets and, with the statistics saved from training, at
    predict time (``normalize_array`` does the same for a raw array).
    """
    if not ds.x.flags.writeable:
        ds.x = ds.x.copy()
    normalize_array(ds.x, stats, ds.name, out=ds.x)
    return ds


def normalize(train: Dataset, *others: Dataset, mode: str = "standard") -> Dict[str, object]:
    """Standardise ``train`` and ``others`` **in place** with statistics of ``train`` only.

    Statistics are per channel for images and per feature for (N, F) data.  ``None``
    entries in ``others`` are skipped (convenient for a missing test set).  Returns the
    statistics (``{"mode", "mean", "std"}``, JSON-able) for ``apply_normalization``.
    """
    stats = compute_stats(train, mode)
    for ds in (train,) + others:
        if ds is not None:
            apply_normalization(ds, stats)
    return stats


# --- splitting -------------------------------------------------------------------------

def stratified_split(ds: Dataset, val_fraction: float, seed: int = 0) -> Tuple[Dataset, Dataset]:
    """Split ``ds`` into ``(train, val)`` with ``round(val_fraction * n_c)`` of each class c.

    Which samples go to ``val`` depends only on ``(labels, val_fraction, seed)``; both
    parts keep the original sample order.
    """
    frac = float(val_fraction)
    if not 0.0 < frac < 1.0:
        raise ConfigError(f"validation fraction must be in (0, 1), got {val_fraction}")
    rng = np.random.default_rng([0x51, int(seed)])
    y = ds.y
    # group by class, random order inside each class
    order = np.lexsort((rng.random(len(y)), y))
    counts = np.bincount(y, minlength=ds.num_classes)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    n_val = np.floor(counts * frac + 0.5).astype(np.int64)
    take = np.zeros(len(y), bool)
    for c in np.flatnonzero(n_val):
        take[order[starts[c]:starts[c] + n_val[c]]] = True
    if not take.any() or take.all():
        raise ConfigError(f"{ds.name}: a {frac:g} split of {len(ds)} samples leaves one side "
                          "empty")
    return (ds.subset(np.flatnonzero(~take), f"{ds.name}"),
            ds.subset(np.flatnonzero(take), f"{ds.name}-val"))


def pixels_to_float(arr: np.ndarray) -> np.ndarray:
    """uint8 -> float32 in [0, 1]; other numeric dtypes -> float32 unchanged."""
    if arr.dtype == np.uint8:
        out = arr.astype(np.float32)
        out /= np.float32(255.0)
        return out
    return np.asarray(arr, dtype=np.float32)


def default_class_names(*labels: Sequence[int]) -> List[str]:
    top = max((int(np.max(y)) for y in labels if len(y)), default=0)
    return [str(i) for i in range(top + 1)]
