"""Torch parameters seen as a dtnn gradient layout (``dtnn.parallel.layout``).

One float32 torch tensor, ``flat``, holds every gradient; each parameter's ``.grad``
is a view of its slice, so autograd accumulates straight into the exchange buffer
and ``flat_grads`` (``flat.numpy()``, same memory) is what MPI and the compression
kernels read and write: no copy between torch and the C kernels.

Order: one readiness group per parameter, in registration order; the groups are laid
out in reverse (the last registered parameter starts the vector), because backward
finishes the last layers first (as DDP buckets them).

Flag slot (``flag_slot=True``, uncompressed exchange only): one more float32 after the
gradients, inside group 0's range, so it is summed with the last bucket.  The bridge
writes 1 ("this rank still trains") or 0 (a joined rank, ``join()``) there, and after the
exchange it reads how many ranks trained: ``join()``'s bookkeeping rides in the
gradient's allreduce instead of a collective of its own per step.  Compressed
exchanges do not sum the vector as it is, so they keep a separate control allreduce.

Where a copy cannot be avoided:

* a parameter whose ``.grad`` is not its view when its gradient arrives (the user set
  it to None, e.g. ``model.zero_grad()`` with torch's default ``set_to_none=True``,
  or assigned another tensor): autograd then wrote a fresh tensor, which
  ``adopt_grad`` copies into the slice once and replaces by the view again;
* non-contiguous (e.g. channels-last) parameters: their views are standard
  contiguous tensors, so ``.grad`` does not share the parameter's strides;
* BatchNorm buffer averaging packs the buffers into one float64 vector (the
  reducer's, shared with dtnn's own trainer);
* the compressed exchange stages a bucket's large tensors when small ones sit between
  them, and batches the small ones (``dtnn.parallel.exchange``).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from dtnn.errors import UserError
from dtnn.parallel.layout import GradSlot


def as_numpy(t: torch.Tensor) -> np.ndarray:
    """A numpy view (shared memory) of a CPU tensor; bfloat16 & co. as raw integers."""
    t = t.detach()
    if t.dtype in (torch.bfloat16,):
        t = t.view(torch.int16)
    elif t.dtype in (torch.complex32,):
        t = t.view(torch.int32)
    return t.numpy()


class TorchLayout:
    """Gradient layout over ``params`` (float32, CPU, dense, requiring grad)."""

    def __init__(self, params: Sequence[torch.Tensor], names: Sequence[str],
                 buffers: Optional[Dict[str, torch.Tensor]] = None,
                 flag_slot: bool = False):
        self.params = list(params)
        self.names = list(names)
        for p, n in zip(self.params, self.names):
            if p.device.type != "cpu":
                raise UserError(f"dtnn.torch: parameter {n!r} is on {p.device}; dtnn "
                                "trains on CPU (move the model with .cpu())")
            if p.dtype != torch.float32:
                raise UserError(f"dtnn.torch: parameter {n!r} is {p.dtype}; the exchange "
                                "reduces float32 gradients (use model.float())")
            if p.is_sparse or p.layout != torch.strided:
                raise UserError(f"dtnn.torch: parameter {n!r} has layout {p.layout}; "
                                "only dense (strided) parameters are supported")
        sizes = [p.numel() for p in self.params]
        #: gradients in the buffer (without the flag slot)
        self.numel = sum(sizes)
        #: index of the control slot after the gradients (None without one)
        self.flag_index: Optional[int] = self.numel if flag_slot else None
        self.flat = torch.zeros(self.numel + int(flag_slot), dtype=torch.float32)
        self.flat_grads = self.flat.numpy()
        self._ranges: List[Tuple[int, int]] = [(0, 0)] * len(self.params)
        self.slots: List[GradSlot] = []
        self.views: List[Optional[torch.Tensor]] = [None] * len(self.params)
        off = 0
        for g in reversed(range(len(self.params))):
            p = self.params[g]
            self._ranges[g] = (off, off + sizes[g])
            self.slots.append(GradSlot(g, self.names[g], off, tuple(p.shape)))
            self.views[g] = self.flat[off:off + sizes[g]].view(p.shape)
            off += sizes[g]
        if flag_slot and self.params:
            # the slot rides in group 0's range (the last one in the vector), so the
            # buckets cover it and it goes out in the last bucket
            a, b = self._ranges[0]
            self._ranges[0] = (a, b + 1)
        self._buffers = dict(buffers or {})

    # --- the GradientLayout protocol -------------------------------------------------
    @property
    def num_groups(self) -> int:
        return len(self.params)

    def group_range(self, g: int) -> Tuple[int, int]:
        return self._ranges[g]

    def buffers(self) -> Dict[str, np.ndarray]:
        return {k: as_numpy(v) for k, v in self._buffers.items()}

    def replica_arrays(self) -> List[np.ndarray]:
        bufs = self._buffers
        return ([as_numpy(p) for p in self.params]
                + [as_numpy(bufs[k]) for k in sorted(bufs)])

    # --- gradients as views -----------------------------------------------------------
    def owns_grad(self, g: int) -> bool:
        grad = self.params[g].grad
        return grad is not None and grad.data_ptr() == self.views[g].data_ptr()

    def adopt_grad(self, g: int) -> None:
        """Make parameter ``g``'s ``.grad`` its view: copy a foreign gradient in, or
        zero the slice if there is none."""
        p, view = self.params[g], self.views[g]
        grad = p.grad
        if grad is not None and grad.data_ptr() == view.data_ptr():
            return
        with torch.no_grad():
            if grad is None:
                view.zero_()
            else:
                if grad.is_sparse:
                    grad = grad.to_dense()
                view.copy_(grad)
        p.grad = view

    def attach(self) -> None:
        """Point every parameter's ``.grad`` at its view (existing gradients copied)."""
        for g in range(len(self.params)):
            self.adopt_grad(g)

    def zero_(self) -> None:
        """Zero every gradient in one pass and keep them as views."""
        self.flat.zero_()
        for g in range(len(self.params)):
            if not self.owns_grad(g):
                self.params[g].grad = self.views[g]
