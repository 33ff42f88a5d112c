"""Horovod-shaped collectives on torch tensors, over dtnn's MPI communicator.

Tensors go to MPI as numpy views of their memory (no copy) when they are contiguous
CPU tensors of a dtype numpy knows; a non-contiguous tensor is copied into a
contiguous one first (and back, for the in-place ``_`` variants).  float16/bfloat16
tensors are summed in float32 (MPI has no portable half-precision sum): a copy each
way.  In a single process every collective is the identity (out-of-place variants
return a copy).
"""
from __future__ import annotations

import hashlib
from typing import Any, Dict, Iterable, List, Optional, Tuple, Union

import numpy as np
import torch

from dtnn.errors import UserError
from dtnn.torch import _runtime
from dtnn.torch.layout import as_numpy

Average, Sum, Min, Max, Product, Adasum = "average", "sum", "min", "max", "product", "adasum"


class Compression:
    """Horovod's ``hvd.Compression`` names, as dtnn compressor specs (any dtnn spec
    string works too: ``compress="topk:ratio=0.01"``)."""
    none = "none"
    fp16 = "fp16"
    bf16 = "bf16"


def _resolve_op(op, average) -> str:
    if op is not None and average is not None:
        raise UserError("allreduce: give op= or average=, not both")
    if op is None:
        op = Sum if average is False else Average
    op = str(op).lower()
    if op == Adasum:
        raise UserError("allreduce: Adasum is not supported by dtnn.torch (use Average)")
    if op not in (Average, Sum, Min, Max, Product):
        raise UserError(f"allreduce: unknown op {op!r} (Average, Sum, Min, Max, Product)")
    return op


def _mpi_op(op: str):
    from mpi4py import MPI
    return {Average: MPI.SUM, Sum: MPI.SUM, Min: MPI.MIN, Max: MPI.MAX,
            Product: MPI.PROD}[op]


_WIDEN = {torch.float16: torch.float32, torch.bfloat16: torch.float32}


class Handle:
    """A collective in flight (``*_async``); ``synchronize(handle)`` finishes it."""

    def __init__(self, request, finish):
        self.request, self._finish, self._result = request, finish, None
        self.done = False

    def wait(self) -> torch.Tensor:
        if not self.done:
            if self.request is not None:
                self.request.Wait()
            self._result = self._finish()
            self.done = True
        return self._result

    def test(self) -> bool:
        return self.done or self.request is None or bool(self.request.Test())


def _allreduce_start(tensor: torch.Tensor, out: torch.Tensor, op: str,
                     prescale: float, postscale: float) -> Handle:
    """Reduce ``tensor`` into ``out`` (same shape/dtype; may be the same tensor)."""
    comm = _runtime.comm()
    size = _runtime.size()
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise UserError(f"allreduce: dtype {tensor.dtype} is not supported")
    work_dtype = _WIDEN.get(tensor.dtype, tensor.dtype)
    src = tensor.detach()
    if prescale != 1.0:
        src = src.to(work_dtype) * prescale
    if src.dtype != work_dtype or not src.is_contiguous():
        src = src.to(work_dtype).contiguous()
    dst = out if (out.dtype == work_dtype and out.is_contiguous()) else \
        torch.empty(out.shape, dtype=work_dtype)
    scale = postscale / size if op == Average else postscale

    def finish() -> torch.Tensor:
        with torch.no_grad():
            if scale != 1.0:
                if dst.is_floating_point():
                    dst.mul_(scale)
                else:
                    dst.copy_(torch.div(dst, 1.0 / scale, rounding_mode="floor"))
            if dst is not out:
                out.copy_(dst)
        return out

    if comm is None or size == 1:
        with torch.no_grad():
            if dst.data_ptr() != src.data_ptr():
                dst.copy_(src)
        return Handle(None, finish)
    s_np, d_np = as_numpy(src), as_numpy(dst)
    from mpi4py import MPI
    if s_np.ctypes.data == d_np.ctypes.data:
        req = comm.Iallreduce(MPI.IN_PLACE, d_np, op=_mpi_op(op))
    else:
        req = comm.Iallreduce(s_np, d_np, op=_mpi_op(op))
    handle = Handle(req, finish)
    handle._keep = (src, dst)   # the buffers must live until the request completes
    return handle


def allreduce_async(tensor: torch.Tensor, average=None, name: Optional[str] = None,
                    op=None, prescale_factor: float = 1.0,
                    postscale_factor: float = 1.0, **_ignored) -> Handle:
    out = torch.empty_like(tensor, memory_format=torch.contiguous_format)
    return _allreduce_start(tensor, out, _resolve_op(op, average), prescale_factor,
                            postscale_factor)


def allreduce_async_(tensor: torch.Tensor, average=None, name: Optional[str] = None,
                     op=None, prescale_factor: float = 1.0,
                     postscale_factor: float = 1.0, **_ignored) -> Handle:
    return _allreduce_start(tensor, tensor, _resolve_op(op, average), prescale_factor,
                            postscale_factor)


def allreduce(tensor: torch.Tensor, average=None, name: Optional[str] = None,
              compression=None, op=None, prescale_factor: float = 1.0,
              postscale_factor: float = 1.0, **_ignored) -> torch.Tensor:
    """A new tensor: ``op`` (default Average) of ``tensor`` over all ranks."""
    return allreduce_async(tensor, average, name, op, prescale_factor,
                           postscale_factor).wait()


def allreduce_(tensor: torch.Tensor, average=None, name: Optional[str] = None, op=None,
               prescale_factor: float = 1.0, postscale_factor: float = 1.0,
               **_ignored) -> torch.Tensor:
    """In place: ``tensor`` becomes the reduction over all ranks."""
    return allreduce_async_(tensor, average, name, op, prescale_factor,
                            postscale_factor).wait()


def synchronize(handle: Handle) -> torch.Tensor:
    return handle.wait()


def poll(handle: Handle) -> bool:
    return handle.test()


def allgather(tensor: torch.Tensor, name: Optional[str] = None) -> torch.Tensor:
    """Concatenation over ranks along dim 0 (first dimensions may differ)."""
    comm = _runtime.comm()
    src = tensor.detach().contiguous()
    if comm is None or _runtime.size() == 1:
        return src.clone()
    rows = comm.allgather((tuple(src.shape), str(src.dtype)))
    if any(r[0][1:] != rows[0][0][1:] or r[1] != rows[0][1] for r in rows):
        raise UserError(f"allgather: ranks disagree on the trailing shape or dtype: {rows}")
    out = torch.empty((sum(r[0][0] for r in rows),) + tuple(src.shape[1:]), dtype=src.dtype)
    s_np = as_numpy(src).reshape(-1).view(np.uint8)
    o_np = as_numpy(out).reshape(-1).view(np.uint8)
    per_row = s_np.size // max(1, src.shape[0]) if src.dim() else s_np.size
    counts = [r[0][0] * per_row if r[0] else per_row for r in rows]
    displs = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(int).tolist()
    from mpi4py import MPI
    comm.Allgatherv([s_np, MPI.BYTE], [o_np, counts, displs, MPI.BYTE])
    return out


def _bcast_into(t: torch.Tensor, root: int) -> None:
    comm = _runtime.comm()
    if comm is None:
        return
    from mpi4py import MPI
    if t.is_contiguous():
        comm.Bcast([as_numpy(t).reshape(-1).view(np.uint8), MPI.BYTE], root=root)
        return
    tmp = t.detach().contiguous()
    comm.Bcast([as_numpy(tmp).reshape(-1).view(np.uint8), MPI.BYTE], root=root)
    with torch.no_grad():
        t.copy_(tmp)


def broadcast_(tensor: torch.Tensor, root_rank: int = 0, name: Optional[str] = None):
    """In place: every rank's ``tensor`` becomes ``root_rank``'s."""
    with torch.no_grad():
        _bcast_into(tensor.detach() if tensor.requires_grad else tensor, root_rank)
    return tensor


def broadcast(tensor: torch.Tensor, root_rank: int = 0, name: Optional[str] = None):
    """A new tensor holding ``root_rank``'s ``tensor``."""
    out = tensor.detach().clone(memory_format=torch.contiguous_format)
    _bcast_into(out, root_rank)
    return out


def broadcast_object(obj: Any, root_rank: int = 0) -> Any:
    comm = _runtime.comm()
    return obj if comm is None else comm.bcast(obj, root=root_rank)


def allgather_object(obj: Any) -> List[Any]:
    comm = _runtime.comm()
    return [obj] if comm is None else comm.allgather(obj)


def barrier() -> None:
    comm = _runtime.comm()
    if comm is not None:
        comm.Barrier()


def _named_tensors(params) -> List[Tuple[str, torch.Tensor]]:
    if isinstance(params, torch.nn.Module):
        params = params.state_dict()
    if isinstance(params, dict):
        items = list(params.items())
    else:
        items = list(params)
        if items and isinstance(items[0], torch.Tensor):
            items = [(str(i), t) for i, t in enumerate(items)]
    return [(str(k), v) for k, v in items if isinstance(v, torch.Tensor)]


def _same_on_every_rank(what: str, signature: Any) -> None:
    comm = _runtime.comm()
    if comm is None:
        return
    digest = hashlib.sha256(repr(signature).encode()).hexdigest()
    table = comm.allgather(digest)
    bad = [r for r, d in enumerate(table) if d != table[0]]
    if bad:
        raise UserError(f"{what}: rank(s) {', '.join(map(str, bad))} hold other tensors "
                        "(names, shapes or dtypes) than rank 0: is every rank running the "
                        "same model?")


def broadcast_parameters(params, root_rank: int = 0) -> None:
    """Overwrite, in place, every tensor of ``params`` (a ``state_dict()``, a module,
    or ``named_parameters()``) with ``root_rank``'s: parameters and buffers start equal."""
    items = _named_tensors(params)
    _same_on_every_rank("broadcast_parameters",
                        [(k, tuple(t.shape), str(t.dtype)) for k, t in items])
    for _, t in items:
        broadcast_(t, root_rank)


def _optimizer_state(optimizer) -> Dict[str, Any]:
    from dtnn.torch.optimizer import is_distributed
    return optimizer.state_dict(exchange=False) if is_distributed(optimizer) \
        else optimizer.state_dict()


def broadcast_optimizer_state(optimizer, root_rank: int = 0) -> None:
    """Every rank's optimizer gets ``root_rank``'s state and hyper-parameters (a fresh
    optimizer whose state is still empty works: the state is created from root's)."""
    comm = _runtime.comm()
    if comm is None:
        return
    state = _optimizer_state(optimizer) if _runtime.rank() == root_rank else None
    tensors: List[torch.Tensor] = []

    def strip(obj):   # tensors -> placeholders (sent by Bcast, not pickled)
        if isinstance(obj, torch.Tensor):
            tensors.append(obj.detach().contiguous())
            return ("__tensor__", len(tensors) - 1, tuple(obj.shape), str(obj.dtype))
        if isinstance(obj, dict):
            return {k: strip(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [strip(v) for v in obj]
        return obj

    skeleton = comm.bcast(strip(state) if state is not None else None, root=root_rank)
    received: List[torch.Tensor] = []

    def fill(obj):
        if isinstance(obj, tuple) and len(obj) == 4 and obj[0] == "__tensor__":
            t = tensors[obj[1]] if state is not None else \
                torch.empty(obj[2], dtype=getattr(torch, obj[3].split(".")[-1]))
            _bcast_into(t, root_rank)
            received.append(t)
            return t
        if isinstance(obj, dict):
            return {k: fill(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [fill(v) for v in obj]
        return obj

    new = fill(skeleton)
    if _runtime.rank() != root_rank:
        optimizer.load_state_dict(new)


def join(*optimizers) -> int:
    """Call when this rank has no more data: it keeps taking part in the other ranks'
    gradient exchanges with zero gradients until every rank has called ``join()``;
    returns the rank that joined last.  ``DistributedOptimizer``s step with the
    averaged gradients meanwhile, so replicas stay identical; for ``DataParallel``
    pass its (plain torch) optimizer(s) to step them too, else the model of the rank
    that joined last is broadcast at the end."""
    from dtnn.torch.bridge import live_bridges
    from dtnn.torch.optimizer import is_distributed
    comm = _runtime.comm()
    bridges = live_bridges()
    if comm is None or _runtime.size() == 1:
        return 0
    entry = max([b.steps_done for b in bridges], default=0)
    while bridges:
        still = 0
        for b in bridges:
            still = max(still, b.shadow_step())
        if still == 0:
            break   # the round in which everybody had joined: no step was taken
        for b in bridges:   # the others took a step with these gradients: take it too
            owner = b.owner() if b.owner is not None else None
            if owner is not None and is_distributed(owner):
                owner.step_without_exchange()
        if any(b.owner is not None and not is_distributed(b.owner()) for b in bridges):
            for opt in optimizers:
                opt.step()
    table = comm.allgather(entry)
    last = max(r for r, n in enumerate(table) if n == max(table))
    for b in bridges:
        owner = b.owner() if b.owner is not None else None
        if owner is not None and not is_distributed(owner) and not optimizers:
            broadcast_parameters(owner.module.state_dict(), root_rank=last)
    return last
