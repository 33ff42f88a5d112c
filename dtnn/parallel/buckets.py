"""Buckets of the flat gradient, the float buffers averaged with it, replica digests.

``model`` is a dtnn Model or any gradient layout (``dtnn.parallel.layout``)."""
from __future__ import annotations

import hashlib
from typing import List, Tuple

import numpy as np

from dtnn.parallel.layout import as_layout, reverse_groups




def plan_buckets(model, bucket_bytes: int) -> List[Tuple[int, int, int]]:
    """``[(start, stop, close_group)]``: bucket slices of the flat vector, in backward
    order; ``close_group`` is the last group (layer) cut into the bucket.  ``model`` is
    a dtnn Model or any gradient layout (``dtnn.parallel.layout``)."""
    layout = as_layout(model)
    itemsize = layout.flat_grads.itemsize
    buckets: List[Tuple[int, int, int]] = []
    start = stop = 0
    last_group = -1

    def gap(i: int, a: int, b: int, stop: int) -> str:  # names the open bucket's start
        return (f"layer {i}'s parameters [{a}, {b}) do not follow [{start}, {stop}): "
                "flat vectors are not in reverse layer order")

    for i, a, b in reverse_groups(layout, gap):
        stop, last_group = b, i
        if (stop - start) * itemsize >= bucket_bytes:
            buckets.append((start, stop, i))
            start = stop
    if stop > start:
        buckets.append((start, stop, last_group))
    if stop != layout.flat_grads.size:
        raise RuntimeError(f"buckets cover {stop} of {layout.flat_grads.size} gradients")
    return buckets


def float_buffers(model) -> List[np.ndarray]:
    """The model's floating-point buffers (BN running stats), in a fixed order."""
    bufs = as_layout(model).buffers()
    return [bufs[k] for k in sorted(bufs) if np.issubdtype(bufs[k].dtype, np.floating)]


def replica_digest(model) -> Tuple[int, float]:
    """(64-bit hash of parameters + buffers, float64 sum): equal iff bit-identical."""
    h = hashlib.sha256()
    total = 0.0
    for arr in as_layout(model).replica_arrays():
        h.update(np.ascontiguousarray(arr).reshape(-1).view(np.uint8))
        total += float(np.sum(arr, dtype=np.float64))
    return int.from_bytes(h.digest()[:8], "little", signed=True), total
