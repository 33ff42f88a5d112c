"""Buckets of the flat gradient, the float buffers averaged with it, replica digests.

``model`` is a dtnn Model or any gradient layout (``dtnn.parallel.layout``)."""
from __future__ import annotations

import hashlib
import math
from typing import List, Optional, Tuple

import numpy as np

from dtnn.parallel.layout import as_layout, reverse_groups

#: a compressed bucket carries at most the payload of ``dist.bucket_mb`` of float32 at
#: 2 bits per element (TernGrad's): denser payloads (int8, QSGD-8: 8 bits; fp16: 16)
#: get buckets smaller by a power of two.  Their 4 MiB buckets put 1 MiB on the link
#: per bucket; at 1 Gbit/s the bucket of conv3-conv6 (vgg11_bn), ready only when
#: conv3's backward ends, needed two sequential 4.4 ms hops after it, and the step
#: waited for them (benchmarks/results/scaling.md, "The exposed tail")
PAYLOAD_BITS = 2
#: and the last bucket (the first layers, posted when backward ends) a quarter of that
LAST_FRACTION = 4


def plan_buckets(model, bucket_bytes: int, last_bytes: Optional[int] = None
                 ) -> List[Tuple[int, int, int]]:
    """``[(start, stop, close_group)]``: bucket slices of the flat vector, in backward
    order; ``close_group`` is the last group (layer) cut into the bucket.  ``model`` is
    a dtnn Model or any gradient layout (``dtnn.parallel.layout``).

    ``last_bytes``: the last bucket (the first layers, posted when backward ends) keeps
    only the groups from the input side that fit in it (at least one); the groups before
    them close a bucket of their own, posted as soon as they are ready."""
    layout = as_layout(model)
    itemsize = layout.flat_grads.itemsize
    buckets: List[Tuple[int, int, int]] = []
    start = stop = 0
    last_group = -1

    def gap(i: int, a: int, b: int, stop: int) -> str:  # names the open bucket's start
        return (f"layer {i}'s parameters [{a}, {b}) do not follow [{start}, {stop}): "
                "flat vectors are not in reverse layer order")

    groups = []
    for i, a, b in reverse_groups(layout, gap):
        groups.append((i, a, b))
        stop, last_group = b, i
        if (stop - start) * itemsize >= bucket_bytes:
            buckets.append((start, stop, i))
            start = stop
    if stop > start:
        buckets.append((start, stop, last_group))
    if last_bytes is not None and buckets and (
            buckets[-1][1] - buckets[-1][0]) * itemsize > last_bytes:
        s, e, g = buckets[-1]
        inside = [(i, a, b) for i, a, b in groups if s <= a < e]
        cut = next((k for k, (_, a, _) in enumerate(inside)
                    if k > 0 and (e - a) * itemsize <= last_bytes), None)
        if cut is None and len(inside) > 1:
            cut = len(inside) - 1          # the input-side group alone
        if cut is not None:
            a = inside[cut][1]
            buckets[-1:] = [(s, a, inside[cut - 1][0]), (a, e, g)]
    if stop != layout.flat_grads.size:
        raise RuntimeError(f"buckets cover {stop} of {layout.flat_grads.size} gradients")
    return buckets


def compressed_bucket_bytes(compressor, bucket_bytes: int) -> Tuple[int, Optional[int]]:
    """``(bucket_bytes, last_bytes)`` for ``plan_buckets`` in a compressed exchange:
    quantisers whose payload is denser than ``PAYLOAD_BITS`` per element get float32
    buckets smaller by the nearest power of two, and a last bucket of a
    ``LAST_FRACTION`` of that; other compressors (summable, sparse, global: one bucket
    for the whole gradient) keep ``bucket_bytes`` and no last-bucket cap."""
    if (compressor is None or compressor.summable or compressor.single_bucket
            or not getattr(compressor, "chunkable", False)):
        return bucket_bytes, None
    from dtnn.compress.base import Unit
    n = 1 << 20
    bits = 8.0 * compressor.payload_size(Unit(0, n, [(0, (n,))])) / n
    shift = max(0, int(round(math.log2(max(bits, 1e-9) / PAYLOAD_BITS))))
    if shift == 0:
        return bucket_bytes, None
    small = max(1, bucket_bytes >> shift)
    return small, max(1, small // LAST_FRACTION)


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
