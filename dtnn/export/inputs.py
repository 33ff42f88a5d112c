"""Real inputs for checks and benchmarks: test samples of the checkpoint's own dataset,
normalised as in training (random normal inputs when that data is not available)."""
from __future__ import annotations

from typing import Tuple

import numpy as np


def check_inputs(path: str, ckpt, n: int) -> Tuple[np.ndarray, str]:
    """``n`` inputs for ``ckpt``'s model and a word saying where they came from."""
    from dtnn.errors import UserError
    shape = tuple(ckpt.model.input_shape)
    try:
        from dtnn.engine.session import config_from_checkpoint, load_data
        cfg = config_from_checkpoint(path)
        data = load_data(cfg, ckpt.meta.get("normalization"))
        ds = data.test if data.test is not None else data.train
        if tuple(ds.x.shape[1:]) == shape and len(ds.x):
            return np.ascontiguousarray(ds.x[:n], np.float32), "test-set"
    except (UserError, OSError, KeyError, ValueError):
        pass
    x = np.random.default_rng(0).standard_normal((n,) + shape).astype(np.float32)
    return x, "random"
