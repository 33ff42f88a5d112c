"""``DistributedOptimizer``: Horovod's wrapper, on dtnn's exchange.

``DistributedOptimizer(opt, named_parameters=model.named_parameters(), compress=...)``
returns an optimizer of a subclass of ``type(opt)`` sharing ``opt``'s parameter groups,
state and hooks (so ``isinstance`` checks and LR schedulers keep working; use the
returned object from then on).  Its gradients leave during backward (see
``dtnn.torch.bridge``); ``step()`` waits for the rest, then runs ``opt``'s own step.

Gradient accumulation: ``backward_passes_per_step=N`` exchanges once every N backward
passes (gradients accumulate in place meanwhile).  ``synchronize()`` finishes the
exchange early (e.g. to clip the averaged gradients), then
``with opt.skip_synchronize(): opt.step()``.

State: ``state_dict()`` is the torch optimizer's plus ``"dtnn"``, the exchange's state
(error-feedback residuals, PowerSGD's Q, step counter).  By default it holds this
rank's part and is not collective (safe under ``if rank() == 0``);
``state_dict(all_ranks=True)`` (collective, on every rank) holds every rank's, so one
file written by rank 0 resumes exactly.
"""
from __future__ import annotations

import contextlib
import weakref
from typing import Any, Dict, Iterable, Optional, Tuple

import torch

from dtnn.errors import UserError
from dtnn.torch import _runtime
from dtnn.torch.bridge import GradientBridge


class _DistributedMixin:
    """Methods the dynamic subclass puts in front of the wrapped optimizer's class."""

    _dtnn_bridge: GradientBridge

    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if self._dtnn_synced:
            self._dtnn_synced = False
        else:
            self._dtnn_bridge.synchronize()
        super().step()
        return loss

    # torch wraps an optimizer class's step with its hook machinery; ours calls the
    # (wrapped) parent step, so it must not be wrapped a second time
    step.hooked = True  # type: ignore[attr-defined]

    def synchronize(self) -> None:
        """Finish the gradient exchange now (collective); step() then skips it."""
        if not self._dtnn_synced:
            self._dtnn_bridge.synchronize()
            self._dtnn_synced = True

    @contextlib.contextmanager
    def skip_synchronize(self):
        """``with opt.skip_synchronize(): opt.step()`` after an explicit
        ``synchronize()`` (Horovod's idiom)."""
        self._dtnn_synced = True
        try:
            yield
        finally:
            self._dtnn_synced = False

    def step_without_exchange(self) -> None:
        """The wrapped optimizer's step on the gradients as they are (join())."""
        super().step()

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero every gradient in place (one pass over the exchange buffer; ``.grad``
        stays a view of it, so ``set_to_none`` is honoured as zeros)."""
        if self._dtnn_bridge.in_step:
            raise UserError("dtnn.torch: optimizer.zero_grad() was called after backward "
                            "but before optimizer.step() or synchronize(): the gradients "
                            "are being exchanged")
        self._dtnn_bridge.layout.zero_()

    def state_dict(self, all_ranks: bool = False, exchange: bool = True) -> Dict[str, Any]:
        state = super().state_dict()
        if exchange:
            state = dict(state, dtnn=self._dtnn_bridge.state_dict(all_ranks))
        return state

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        state_dict = dict(state_dict)
        exchange = state_dict.pop("dtnn", None)
        super().load_state_dict(state_dict)
        if exchange is not None:
            self._dtnn_bridge.load_state_dict(exchange)

    def check_replicas(self) -> None:
        """Collective: raise ReplicaMismatchError unless every rank's parameters (and
        averaged buffers) are bit-identical."""
        self._dtnn_bridge.check_replicas()

    def close(self) -> None:
        """Stop exchanging: remove the gradient hooks (plain local steps from now on)."""
        self._dtnn_bridge.close()

    def exchange_stats(self) -> Dict[str, Any]:
        """Per-step means of the exchange's timing and bytes (see GradientReducer.stats)."""
        return self._dtnn_bridge.stats()


def is_distributed(optimizer) -> bool:
    return isinstance(optimizer, _DistributedMixin)


def _named(optimizer, named_parameters) -> Tuple[list, list]:
    """(params, names) in registration order: every parameter the optimizer updates
    that requires a gradient."""
    in_opt = [p for g in optimizer.param_groups for p in g["params"]]
    wanted = {id(p) for p in in_opt if p.requires_grad}
    if named_parameters is None:
        items = [(f"param.{i}", p) for i, p in enumerate(in_opt)]
    else:
        items = list(named_parameters)
        if items and not isinstance(items[0], tuple):
            raise UserError("named_parameters must be (name, parameter) pairs, e.g. "
                            "model.named_parameters()")
        known = {id(p) for _, p in items}
        missing = [i for i, p in enumerate(in_opt) if id(p) not in known]
        if missing:
            raise UserError(f"named_parameters does not name {len(missing)} of the "
                            "optimizer's parameters: pass model.named_parameters() of "
                            "the model the optimizer trains")
        names = [n for n, _ in items]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise UserError(f"named_parameters has duplicate names: {sorted(dup)[:5]}")
    seen, params, names = set(), [], []
    for n, p in items:
        if id(p) in wanted and id(p) not in seen:
            seen.add(id(p))
            params.append(p)
            names.append(n)
    return params, names


def DistributedOptimizer(optimizer: torch.optim.Optimizer, named_parameters=None,
                         compress: str = "none", compression=None,
                         bucket_mb: Optional[float] = None,
                         backward_passes_per_step: int = 1, op=None,
                         gradient_predivide_factor: float = 1.0, module=None,
                         average_buffers: bool = True, check_replicas: bool = False,
                         **exchange_options):
    """Wrap ``optimizer`` so its gradients are averaged over all ranks.

    ``compress``: a dtnn compressor spec ("none", "fp16", "topk:ratio=0.01",
    "powersgd:rank=2", ...; ``compression=Compression.fp16`` is the Horovod spelling).
    ``bucket_mb``: bucket size (default dtnn's ``dist.bucket_mb``).  ``module``: if
    given, its floating buffers (BatchNorm running statistics) are averaged every step
    (``average_buffers``) and covered by ``check_replicas``.  Further keywords are
    dtnn ``dist`` options (``min_compress_size``, ``compress_warmup_steps``,
    ``compress_seed``, ``mode``, ``progress``)."""
    from dtnn.torch.ops import Average, _resolve_op
    if not _runtime.is_initialized():
        _runtime.init()
    if is_distributed(optimizer):
        raise UserError("DistributedOptimizer: the optimizer is already distributed")
    if _resolve_op(op, None) != Average:
        raise UserError("DistributedOptimizer: only op=Average is supported")
    if gradient_predivide_factor != 1.0:
        raise UserError("DistributedOptimizer: gradient_predivide_factor is not supported "
                        "(dtnn averages in float32 after the sum)")
    if compression is not None:
        if compress not in (None, "none"):
            raise UserError("DistributedOptimizer: give compress= or compression=, not both")
        compress = getattr(compression, "spec", compression)
    params, names = _named(optimizer, named_parameters)
    buffers = None
    if module is not None and average_buffers:
        buffers = {n: b for n, b in module.named_buffers() if b.is_floating_point()}
    bridge = GradientBridge(params, names, compress=str(compress or "none"),
                            bucket_mb=bucket_mb, passes=backward_passes_per_step,
                            buffers=buffers, check_replicas=check_replicas,
                            options=exchange_options)
    base = type(optimizer)
    cls = type(base.__name__, (_DistributedMixin, base), {"__module__": base.__module__})
    wrapped = cls.__new__(cls)
    wrapped.__dict__.update(optimizer.__dict__)
    wrapped._dtnn_bridge = bridge
    wrapped._dtnn_synced = False
    bridge.owner = weakref.ref(wrapped)
    return wrapped
