"""``DataParallel``: a DDP-shaped module wrapper on dtnn's exchange.

    model = dtnn.torch.DataParallel(model, compress="powersgd:rank=2")
    out = model(x); loss_fn(out, y).backward()    # gradients averaged when this returns
    optimizer.step()                                # any plain torch optimizer

At construction rank 0's parameters and buffers are broadcast.  Gradients leave during
backward (``dtnn.torch.bridge``) and the exchange is finished by a callback queued on
autograd's engine, so when ``backward()`` returns every ``.grad`` holds the average,
as with DDP.  ``no_sync()`` accumulates gradients locally (the next backward outside
it exchanges the sum).

Buffers (BatchNorm running statistics), ``sync_buffers``:

* ``"average"`` (default, as dtnn's trainer): the float buffers are averaged every
  step, hidden behind backward; replicas hold identical statistics;
* ``"broadcast"`` (DDP's default, ``broadcast_buffers=True``): rank 0's buffers are
  broadcast before every training forward;
* ``"none"``: each rank keeps its own.

``find_unused_parameters=True`` walks the autograd graph of the output after forward
(as DDP does) so buckets holding parameters the output does not depend on go out
during backward instead of at its end; without it they still go, just later.

``state_dict()`` is the module's (keys prefixed ``module.``, like DDP) plus
``_extra_state``, the exchange's state (this rank's; ``state_dict(all_ranks=True)``,
collective, holds every rank's).
"""
from __future__ import annotations

import contextlib
import weakref
from typing import Any, Dict, Optional

import torch
from torch import nn

from dtnn.errors import UserError
from dtnn.torch import _runtime
from dtnn.torch.bridge import GradientBridge

SYNC_BUFFERS = ("average", "broadcast", "none")


class DataParallel(nn.Module):
    def __init__(self, module: nn.Module, compress: str = "none",
                 bucket_mb: Optional[float] = None, sync_buffers: str = "average",
                 broadcast_buffers: Optional[bool] = None,
                 find_unused_parameters: bool = False, check_replicas: bool = False,
                 **exchange_options):
        super().__init__()
        if not _runtime.is_initialized():
            _runtime.init()
        if broadcast_buffers is not None:   # DDP's spelling
            sync_buffers = "broadcast" if broadcast_buffers else "none"
        if sync_buffers not in SYNC_BUFFERS:
            raise UserError(f"DataParallel: sync_buffers must be one of "
                            f"{', '.join(SYNC_BUFFERS)}, got {sync_buffers!r}")
        self.module = module
        self.sync_buffers = sync_buffers
        self.find_unused_parameters = bool(find_unused_parameters)
        from dtnn.torch.ops import broadcast_parameters
        broadcast_parameters(module.state_dict(), root_rank=0)
        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        if not named:
            raise UserError("DataParallel: the module has no parameter that requires a "
                            "gradient")
        averaged = None
        if sync_buffers == "average":
            averaged = {n: b for n, b in module.named_buffers() if b.is_floating_point()}
        self._bridge = GradientBridge([p for _, p in named], [n for n, _ in named],
                                      compress=compress, bucket_mb=bucket_mb,
                                      buffers=averaged, check_replicas=check_replicas,
                                      options=exchange_options)
        self._bridge.owner = weakref.ref(self)
        self._bridge.on_first_ready = self._queue_finish
        self._gather_state = False
        self._index = {id(p): g for g, p in enumerate(self._bridge.layout.params)}

    # --- forward / backward ---------------------------------------------------------------
    def forward(self, *args, **kwargs):
        training = self.module.training and torch.is_grad_enabled()
        if training and self.sync_buffers == "broadcast":
            from dtnn.torch.ops import broadcast_
            for _, b in self.module.named_buffers():
                broadcast_(b, 0)
        out = self.module(*args, **kwargs)
        if training and self.find_unused_parameters and not self._bridge.paused:
            self._mark_unused(out)
        return out

    def _queue_finish(self) -> None:
        # runs inside backward (from the first parameter hook of the step)
        torch.autograd.Variable._execution_engine.queue_callback(self._bridge.synchronize)

    def _mark_unused(self, out: Any) -> None:
        """Parameters the output does not depend on are ready now (DDP's traversal)."""
        roots = [t.grad_fn for t in _tensors(out) if t.grad_fn is not None]
        used, stack, seen = set(), list(roots), set()
        while stack:
            fn = stack.pop()
            if fn is None or fn in seen:
                continue
            seen.add(fn)
            var = getattr(fn, "variable", None)
            if var is not None:
                used.add(id(var))
            stack.extend(f for f, _ in fn.next_functions)
        unused = [g for pid, g in self._index.items() if pid not in used]
        if unused:
            self._bridge.mark_unused(unused)

    @contextlib.contextmanager
    def no_sync(self):
        """Backward passes inside accumulate gradients locally, without exchanging."""
        old = self._bridge.paused
        self._bridge.paused = True
        try:
            yield
        finally:
            self._bridge.paused = old

    def close(self) -> None:
        """Stop exchanging: remove the gradient hooks (the module stays usable)."""
        self._bridge.close()

    # --- checks, statistics, state ----------------------------------------------------------
    def check_replicas(self) -> None:
        """Collective: ReplicaMismatchError unless parameters (and averaged buffers) are
        bit-identical on every rank."""
        self._bridge.check_replicas()

    def exchange_stats(self) -> Dict[str, Any]:
        return self._bridge.stats()

    def state_dict(self, *args, all_ranks: bool = False, **kwargs):
        self._gather_state = bool(all_ranks)
        try:
            return super().state_dict(*args, **kwargs)
        finally:
            self._gather_state = False

    def get_extra_state(self) -> Dict[str, Any]:
        return self._bridge.state_dict(self._gather_state)

    def set_extra_state(self, state: Dict[str, Any]) -> None:
        self._bridge.load_state_dict(state)


def _tensors(obj):
    if isinstance(obj, torch.Tensor):
        yield obj
    elif isinstance(obj, (list, tuple)):
        for o in obj:
            yield from _tensors(o)
    elif isinstance(obj, dict):
        for o in obj.values():
            yield from _tensors(o)
