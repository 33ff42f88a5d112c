"""``hdf5`` source: an HDF5 file with datasets x_train, y_train[, x_test, y_test, classes].

Keys are looked up at the file's root (or inside ``group``).  See ``dtnn.data.arrays``
for the accepted layouts and checks.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from dtnn.data._opts import ClassesOption
from dtnn.data.arrays import datasets_from_arrays
from dtnn.data.dataset import DATASETS, Dataset
from dtnn.errors import ConfigError, DataError


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _h5py():
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py is a hard dependency
        raise ConfigError("the hdf5 dataset source needs h5py (pip install h5py)") from None
    return h5py


@DATASETS.register("hdf5")
def load_hdf5(path, *, channels_last=None, classes: ClassesOption = None,
              group: str = "/",
              only: Optional[str] = None) -> Tuple[Optional[Dataset], Optional[Dataset]]:
    """Load an HDF5 file.  ``channels_last=True`` for (N, H, W, C) samples;
    ``only="test"`` reads just ``x_test``/``y_test``."""
    if path is None:
        raise ConfigError("dataset 'hdf5' needs a path to an HDF5 file")
    h5py = _h5py()
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: file not found")
    if p.is_dir():
        raise DataError(f"{p}: is a directory, expected an HDF5 file")
    try:
        f = h5py.File(p, "r")
    except OSError as e:
        raise DataError(f"{p}: not a readable HDF5 file ({_one_line(e)})") from None
    with f:
        root = f.get(group) if group not in ("", "/") else f
        if not isinstance(root, h5py.Group):
            raise DataError(f"{p}: has no group '{group}'")
        keys = [k for k in root.keys()]

        def fetch(key: str) -> np.ndarray:
            node = root[key]
            if not isinstance(node, h5py.Dataset):
                raise DataError(f"{p}: '{key}' is a group, expected a dataset (array)")
            try:
                return np.asarray(node[()])
            except (OSError, TypeError, ValueError) as e:
                raise DataError(f"{p}: cannot read '{key}' ({_one_line(e)})") from None

        return datasets_from_arrays(str(p), fetch, keys, channels_last=channels_last,
                                    classes=classes, name=p.stem, source="hdf5",
                                    only=only)


def save_hdf5(path, train: Dataset, test: Optional[Dataset] = None) -> None:
    """Write datasets in the layout ``load_hdf5`` reads."""
    h5py = _h5py()
    with h5py.File(path, "w") as f:
        f.create_dataset("x_train", data=train.x)
        f.create_dataset("y_train", data=train.y)
        f.create_dataset("classes", data=np.asarray(train.classes, dtype=object),
                         dtype=h5py.string_dtype())
        if test is not None:
            f.create_dataset("x_test", data=test.x)
            f.create_dataset("y_test", data=test.y)
