"""What the gradient exchange needs from "a model": one flat gradient buffer and its layout.

The ``GradientReducer`` and ``CompressedExchange`` never look at layers.  They see a
*gradient layout*:

``flat_grads``
    one contiguous float32 vector holding every gradient (buckets are slices of it,
    MPI and the compression kernels work on it in place);
``slots``
    one entry per parameter tensor: ``offset``, ``size`` and ``shape`` inside
    ``flat_grads`` (compressors see tensor shapes: PowerSGD, per-layer top-k);
``num_groups`` / ``group_range(g)``
    *readiness groups*: the set of tensors whose gradients become final together
    (a dtnn layer; one torch parameter).  ``group_range(g)`` is the contiguous
    ``[start, stop)`` of group ``g`` (empty ``(0, 0)`` if it has no parameters).
    Groups are laid out in **reverse** order: group ``num_groups - 1`` starts the
    vector, since backward finishes the last groups first; the bucket planner
    walks ``g = num_groups - 1 .. 0`` and cuts contiguous buckets.
    ``reducer.on_grads_ready(g)`` says group ``g`` is final; a bucket is posted
    once all its groups are, and buckets are always posted in bucket order (every
    rank issues the same collectives in the same order, whatever order its groups
    became ready in);
``buffers()``
    non-trainable state keyed by name (BatchNorm running statistics): the float
    ones are averaged every step if ``average_buffers``;
``replica_arrays()``
    the arrays whose bits must be equal on every rank (``check_replicas``).

``ModelLayout`` adapts a dtnn ``Model`` (groups = layers); ``dtnn.torch`` builds its
own layout over torch parameters (groups = parameters, in registration order).  Any
object with these attributes works: ``as_layout`` passes it through.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import (Callable, Dict, Iterator, List, Protocol, Sequence, Tuple,
                    runtime_checkable)

import numpy as np


@dataclass(frozen=True)
class GradSlot:
    """Where one parameter tensor's gradient sits in ``flat_grads``."""
    group: int
    name: str
    offset: int
    shape: Tuple[int, ...]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))


@runtime_checkable
class GradientLayout(Protocol):
    flat_grads: np.ndarray
    slots: Sequence

    @property
    def num_groups(self) -> int: ...

    def group_range(self, g: int) -> Tuple[int, int]: ...

    def buffers(self) -> Dict[str, np.ndarray]: ...

    def replica_arrays(self) -> List[np.ndarray]: ...


class ModelLayout:
    """A dtnn ``Model`` seen as a gradient layout: one group per layer."""

    def __init__(self, model):
        self.model = model
        self.flat_grads = model.flat_grads
        self.slots = model.slots

    @property
    def num_groups(self) -> int:
        return len(self.model.layers)

    def group_range(self, g: int) -> Tuple[int, int]:
        return self.model.layer_param_range(g)

    def buffers(self) -> Dict[str, np.ndarray]:
        return self.model.buffers()

    def replica_arrays(self) -> List[np.ndarray]:
        bufs = self.model.buffers()
        return [self.model.flat_params] + [bufs[k] for k in sorted(bufs)]


def as_layout(obj) -> GradientLayout:
    """``obj`` itself if it is a gradient layout, else a dtnn Model wrapped in one."""
    if hasattr(obj, "group_range") and hasattr(obj, "replica_arrays"):
        return obj
    if hasattr(obj, "layer_param_range") and hasattr(obj, "flat_grads"):
        return ModelLayout(obj)
    raise TypeError(f"{type(obj).__name__} is neither a gradient layout "
                    "(dtnn.parallel.layout.GradientLayout) nor a dtnn Model")


def reverse_groups(layout: GradientLayout, gap: Callable[[int, int, int, int], str]
                   ) -> Iterator[Tuple[int, int, int]]:
    """``(group, a, b)`` of the non-empty groups, the last group first, each starting
    where the one before stopped; ``RuntimeError(gap(group, a, b, stop))`` where not."""
    stop = 0
    for g in reversed(range(layout.num_groups)):
        a, b = layout.group_range(g)
        if b <= a:
            continue
        if a != stop:
            raise RuntimeError(gap(g, a, b, stop))
        yield g, a, b
        stop = b


def check_layout(layout: GradientLayout) -> None:
    """RuntimeError unless the groups tile ``flat_grads`` in reverse order and every
    slot lies inside its group."""
    grads = layout.flat_grads
    if not (isinstance(grads, np.ndarray) and grads.dtype == np.float32
            and grads.ndim == 1 and grads.flags.c_contiguous):
        raise RuntimeError("flat_grads must be a contiguous 1-D float32 vector")
    def gap(g: int, a: int, b: int, stop: int) -> str:
        return (f"group {g}'s gradients [{a}, {b}) do not follow [.., {stop}): "
                "groups must be laid out in reverse order")

    stop = 0
    for _g, _a, stop in reverse_groups(layout, gap):
        pass
    if stop != grads.size:
        raise RuntimeError(f"groups cover {stop} of {grads.size} gradients")
    for s in layout.slots:
        if s.offset < 0 or s.offset + s.size > grads.size:
            raise RuntimeError(f"slot at {s.offset} (+{s.size}) is outside flat_grads")
