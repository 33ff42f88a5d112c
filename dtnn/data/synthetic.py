"""``synthetic`` source: learnable random data for throughput benchmarks and smoke tests.

Each class has a fixed template (smooth blobs of 4x4-pixel blocks for images, a random
vector for features); a sample is its class template plus Gaussian noise of standard
deviation ``noise``.  Everything is determined by ``seed``: the templates, the training
set and the test set each come from their own streams, so changing ``n_train`` does not
change the test set, and a larger ``n_train`` extends the smaller one (same first
samples).
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from dtnn.data._opts import as_float, as_int, as_shape
from dtnn.data.dataset import DATASETS, Dataset
from dtnn.errors import ConfigError

_BLOCK = 4      # template resolution: one random value per 4x4 pixel block
_CHUNK = 4096   # samples per random stream / pass (bounds temporaries)


def _templates(rng: np.random.Generator, shape: Tuple[int, ...], k: int) -> np.ndarray:
    if len(shape) == 1:
        return rng.standard_normal((k,) + shape, dtype=np.float32)
    c, h, w = shape
    coarse = rng.standard_normal((k, c, -(-h // _BLOCK), -(-w // _BLOCK)), dtype=np.float32)
    fine = coarse.repeat(_BLOCK, axis=2).repeat(_BLOCK, axis=3)
    return np.ascontiguousarray(fine[:, :, :h, :w])


def _draw(seed: int, stream: int, templates: np.ndarray, n: int,
          noise: float) -> Tuple[np.ndarray, np.ndarray]:
    """n samples; chunk j uses its own label and noise streams, so the first m samples
    are the same for every n >= m."""
    k = len(templates)
    x = np.empty((n,) + templates.shape[1:], np.float32)
    y = np.empty(n, np.int64)
    for j, lo in enumerate(range(0, n, _CHUNK)):
        hi = min(n, lo + _CHUNK)
        y[lo:hi] = np.random.default_rng([seed, stream, j, 0]).integers(0, k, size=hi - lo)
        np.random.default_rng([seed, stream, j, 1]).standard_normal(
            out=x[lo:hi], dtype=np.float32)
        if noise != 1.0:
            x[lo:hi] *= np.float32(noise)
        x[lo:hi] += templates[y[lo:hi]]
    return x, y


@DATASETS.register("synthetic")
def load_synthetic(path=None, *, shape=(1, 28, 28), classes=10, n_train=10000, n_test=2000,
                   noise=1.0, seed=0) -> Tuple[Dataset, Optional[Dataset]]:
    """Synthetic (train, test); ``shape`` is (C, H, W) or (F,); ``n_test=0`` -> no test set."""
    if path is not None:
        raise ConfigError("dataset 'synthetic' is generated and takes no path")
    shape = as_shape("shape", shape)
    k = as_int("classes", classes, minimum=2)
    n_train = as_int("n_train", n_train, minimum=1)
    n_test = as_int("n_test", n_test, minimum=0)
    noise = as_float("noise", noise, 0.0)
    seed = as_int("seed", seed, minimum=0)
    names = [str(i) for i in range(k)]
    templates = _templates(np.random.default_rng([seed, 0]), shape, k)
    meta = {"source": "synthetic", "shape": list(shape), "classes": k, "noise": noise,
            "seed": seed}
    x, y = _draw(seed, 1, templates, n_train, noise)
    train = Dataset(x, y, names, "synthetic", dict(meta))
    test = None
    if n_test:
        x, y = _draw(seed, 2, templates, n_test, noise)
        test = Dataset(x, y, names, "synthetic-test", dict(meta))
    return train, test
