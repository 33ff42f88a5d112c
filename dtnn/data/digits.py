"""``digits`` source: scikit-learn's bundled 8x8 handwritten digits (1797 samples).

No download: the data ships inside scikit-learn.  Pixels (0..16) are scaled to [0, 1]
and the set is split into train/test with a seeded stratified split.
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from dtnn.data._opts import as_float, as_int
from dtnn.data.dataset import DATASETS, Dataset, stratified_split
from dtnn.errors import ConfigError


@DATASETS.register("digits")
def load_digits(path=None, *, test_fraction=0.2,
                seed=0) -> Tuple[Dataset, Optional[Dataset]]:
    """(N, 1, 8, 8) digits; ``test_fraction=0`` returns all 1797 samples and no test set."""
    if path is not None:
        raise ConfigError("dataset 'digits' is bundled with scikit-learn and takes no path")
    frac = as_float("test_fraction", test_fraction, 0.0, 1.0, high_open=True)
    seed = as_int("seed", seed, minimum=0)
    try:
        from sklearn.datasets import load_digits as sk_load_digits
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        raise ConfigError("the digits dataset needs scikit-learn (pip install scikit-learn)") from None
    bunch = sk_load_digits()
    x = (np.asarray(bunch.images, dtype=np.float32) / np.float32(16.0))[:, None, :, :]
    full = Dataset(x, np.asarray(bunch.target, dtype=np.int64),
                   [str(i) for i in range(10)], "digits", {"source": "digits"})
    if frac == 0.0:
        return full, None
    train, test = stratified_split(full, frac, seed)
    train.name, test.name = "digits", "digits-test"
    return train, test
