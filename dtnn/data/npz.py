"""``npz`` source: a NumPy ``.npz`` archive with x_train, y_train[, x_test, y_test, classes].

See ``dtnn.data.arrays`` for the accepted layouts and checks.
"""
from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Optional, Tuple

import numpy as np

from dtnn.data._opts import ClassesOption
from dtnn.data.arrays import datasets_from_arrays
from dtnn.data.dataset import DATASETS, Dataset
from dtnn.errors import ConfigError, DataError


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


@DATASETS.register("npz")
def load_npz(path, *, channels_last=None, classes: ClassesOption = None,
             only: Optional[str] = None) -> Tuple[Optional[Dataset], Optional[Dataset]]:
    """Load an .npz archive.  ``channels_last=True`` for (N, H, W, C) samples;
    ``only="test"`` reads just ``x_test``/``y_test``."""
    if path is None:
        raise ConfigError("dataset 'npz' needs a path to an .npz file")
    p = Path(path)
    if p.is_dir():
        raise DataError(f"{p}: is a directory, expected an .npz file")
    try:
        with open(p, "rb") as f:
            head = f.read(6)
    except FileNotFoundError:
        raise DataError(f"{p}: file not found") from None
    except OSError as e:
        raise DataError(f"{p}: cannot read ({e.strerror or _one_line(e)})") from None
    if head == b"\x93NUMPY":
        raise DataError(f"{p}: is a single-array .npy file; expected an .npz archive with "
                        "x_train and y_train")
    if head[:2] != b"PK":
        raise DataError(f"{p}: not an .npz archive (no zip signature)")
    try:
        archive = np.load(p, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{p}: not a readable .npz file ({_one_line(e)})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):  # pragma: no cover - zip checked above
        raise DataError(f"{p}: not an .npz archive")

    def fetch(key: str) -> np.ndarray:
        try:
            return archive[key]
        except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
            raise DataError(f"{p}: cannot read array '{key}' ({_one_line(e)})") from None

    with archive:
        return datasets_from_arrays(str(p), fetch, archive.files, channels_last=channels_last,
                                    classes=classes, name=p.stem, source="npz",
                                    only=only)


def save_npz(path, train: Dataset, test: Optional[Dataset] = None) -> None:
    """Write datasets in the layout ``load_npz`` reads (float32 samples, class names)."""
    arrays = {"x_train": train.x, "y_train": train.y, "classes": np.asarray(train.classes)}
    if test is not None:
        arrays.update(x_test=test.x, y_test=test.y)
    np.savez(path, **arrays)
