"""The short path from a data source to batches, shared by ``dtnn train`` and user code.

    train, test = dtnn.data.load("fashion-mnist")        # or a path: dir of IDX, .npz, .h5
    for x, y in dtnn.data.loader(train, batch_size=64, ctx=ctx).epoch(e): ...

``load_splits`` is what ``dtnn train`` uses (``[data]`` of the config): the source's
train and test sets, an optional stratified validation split taken from the training
set, and per-channel standardisation with the training statistics (or given ones,
e.g. from a checkpoint).  The statistics also go into each dataset's
``meta["normalization"]``, so ``dtnn.save(..., data=train)`` stores them with the model.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Dict, Optional, Tuple

from dtnn.data.augment import Augment
from dtnn.data.dataset import (DATASETS, Dataset, _ensure_loaders, apply_normalization,
                               load_dataset, normalize, stratified_split)
from dtnn.data.loader import BatchLoader
from dtnn.errors import ConfigError


@dataclass
class Splits:
    """What ``load_splits`` returns."""
    train: Dataset
    val: Optional[Dataset]
    test: Optional[Dataset]
    #: the standardisation applied to every split (None when ``normalize=False``)
    normalization: Optional[Dict[str, Any]]


def resolve_source(source: str, path: Optional[str] = None) -> Tuple[str, Optional[str]]:
    """``(source, path)``: a registered source name as it is, or a path whose kind
    names the source (a directory: idx; ``.npz``: npz; ``.h5``/``.hdf5``: hdf5)."""
    _ensure_loaders()
    if source in DATASETS:
        return source, path
    if path is None:
        if os.path.isdir(source):
            return "idx", source
        ext = os.path.splitext(source)[1].lower()
        kind = {".npz": "npz", ".h5": "hdf5", ".hdf5": "hdf5"}.get(ext)
        if kind:
            return kind, source
    raise ConfigError(f"data source '{source}': not one of {', '.join(DATASETS.names())} "
                      "nor a directory of IDX files, an .npz or an HDF5 file")


def load_splits(source: str, path: Optional[str] = None, *, normalize_inputs: bool = True,
                val_fraction: float = 0.0, seed: int = 0,
                normalization: Optional[Dict[str, Any]] = None, **options: Any) -> Splits:
    """Train/validation/test sets of ``source``, standardised as described above."""
    source, path = resolve_source(source, path)
    train, test = load_dataset(source, path, **options)
    val = None
    if val_fraction > 0:
        train, val = stratified_split(train, val_fraction, seed=seed)
    splits = [ds for ds in (train, val, test) if ds is not None]
    if normalize_inputs:
        if normalization is None:
            normalization = normalize(*splits)
        else:
            for ds in splits:
                apply_normalization(ds, normalization)
        for ds in splits:
            ds.meta["normalization"] = normalization
    else:
        normalization = None
    return Splits(train, val, test, normalization)


def load(source: str, path: Optional[str] = None, *, normalize: bool = True, seed: int = 0,
         **options: Any) -> Tuple[Dataset, Optional[Dataset]]:
    """``(train, test)`` of a source name or a data path, standardised with the training
    set's per-channel mean and std unless ``normalize=False`` (``test`` may be None).
    ``options`` go to the source's loader (e.g. ``shape=[1, 8, 8]`` for synthetic)."""
    s = load_splits(source, path, normalize_inputs=normalize, seed=seed, **options)
    return s.train, s.test


def loader(ds: Dataset, batch_size: int, ctx=None, *, seed: int = 0, shuffle: bool = True,
           drop_last: bool = True, augment: Optional[Augment] = None) -> BatchLoader:
    """Mini-batches of ``ds`` for this process: every process takes its own slice of
    each global batch of ``batch_size * processes`` samples (``ctx``: the context from
    ``dtnn.init()``; default the current one).  ``loader(...).epoch(e)`` iterates one
    epoch; the order depends on (seed, epoch) only, as in ``dtnn train``."""
    if ctx is None:
        from dtnn.parallel import get_context
        ctx = get_context()
    return BatchLoader(ds, batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last,
                       rank=ctx.rank, world_size=ctx.size, augment=augment)
