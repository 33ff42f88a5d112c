"""``GradientBridge``: torch's autograd hooks driving dtnn's gradient exchange.

Per step (one optimizer step; ``passes`` backward passes of gradient accumulation):

1. every parameter has a ``register_post_accumulate_grad_hook``; when it fires for
   the ``passes``-th time, the parameter's gradient (already in the flat buffer: its
   ``.grad`` is a view, see ``dtnn.torch.layout``) is final and the bridge calls
   ``reducer.on_grads_ready(g)``.  The reducer posts each bucket's non-blocking
   collective (compressed or not) as soon as all of its parameters reported, in
   bucket order, and tests the ones in flight (MPI progress) on every hook;
2. the first such hook of a step *begins* it: "this rank is still training" (what
   ``join()`` needs to know) is written to the flag slot after the gradients, summed
   with the last bucket (uncompressed; compressed exchanges post a 4-byte
   ``Iallreduce`` of it instead), and the reducer's ``start_step`` runs (BatchNorm
   buffers, final after forward, go out now);
3. ``synchronize()`` (from ``optimizer.step()``, or at the end of backward for
   ``DataParallel``) gives parameters that got no gradient this step a zero gradient,
   posts the buckets not posted yet (``post_remaining``), waits, decodes and scales:
   every ``.grad`` then holds the average over ranks.

Unused parameters therefore never hang a job: their buckets go out at
``synchronize()``, when every rank gets there, with zeros (as Horovod does).  A
bucket's collective may start late on a rank that did not use a parameter in it, but
every rank posts the same collectives in the same order.

``join()`` (``dtnn.torch.ops``): a rank out of data runs *shadow steps*: zero
gradients, "not training" in the control allreduce, the same buckets, until the
control sum says nobody trains any more.  Averages keep dividing by the world size
(the joined ranks contribute zeros, like DDP's default).
"""
from __future__ import annotations

import os
import weakref
from typing import Any, Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

from dtnn.parallel.options import DistOptions
from dtnn.torch import _runtime
from dtnn.torch.layout import TorchLayout

#: live bridges in creation order (the same on every rank): join() shadows them all
_BRIDGES: "List[weakref.ref]" = []
#: ids of parameters already hooked by a bridge
_HOOKED: "weakref.WeakValueDictionary" = weakref.WeakValueDictionary()


def live_bridges() -> List["GradientBridge"]:
    out = []
    for ref in list(_BRIDGES):
        b = ref()
        if b is None or b.closed:
            _BRIDGES.remove(ref)
        else:
            out.append(b)
    return out


def default_mode(ctx) -> str:
    """"blocking" when every rank is on this host, else "overlap".

    On shared memory the allreduce of the whole gradient is quick (vgg11_bn w0.5, 9.5
    MB: 1.8 ms for 2 ranks) and the MPI progress calls that bucketed overlap makes from
    the hooks cost more than they hide (vgg11_bn w0.5, blocking vs overlap: 900 vs 884
    samples/s at 2 ranks, 816 vs 806 at 4; benchmarks/results/torch_bridge.md, table A);
    across hosts the link is the bottleneck and
    overlap hides part of it.  ``mode=`` or ``DTNN_DIST_MODE`` override."""
    size = int(getattr(ctx, "size", 1))
    return "blocking" if size > 1 and int(getattr(ctx, "local_size", 1)) == size \
        else "overlap"


def _to_torch(obj: Any) -> Any:
    """numpy arrays -> tensors, so checkpoints load with torch.load(weights_only=True)."""
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.array(obj, copy=True))
    if isinstance(obj, dict):
        return {k: _to_torch(v) for k, v in obj.items()}
    if isinstance(obj, (np.integer, np.floating)):
        return obj.item()
    return obj


def _to_numpy(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().numpy().copy()
    if isinstance(obj, dict):
        return {k: _to_numpy(v) for k, v in obj.items()}
    return obj


class GradientBridge:
    def __init__(self, params: Sequence[torch.Tensor], names: Sequence[str], *,
                 compress: str = "none", bucket_mb: Optional[float] = None, passes: int = 1,
                 buffers: Optional[Dict[str, torch.Tensor]] = None,
                 check_replicas: bool = False, options: Optional[Dict[str, Any]] = None):
        from dtnn.errors import UserError
        ctx = _runtime.context()
        if int(passes) < 1:
            raise UserError(f"backward_passes_per_step must be >= 1, got {passes}")
        for p, n in zip(params, names):
            if id(p) in _HOOKED:
                raise UserError(f"dtnn.torch: parameter {n!r} is already handled by another "
                                "DistributedOptimizer/DataParallel")
        self.comm = getattr(ctx, "comm", None)
        self.rank, self.size = int(ctx.rank), int(ctx.size)
        self.passes = int(passes)
        self.compress = (compress or "none").strip()
        opts: Dict[str, Any] = dict(options or {})
        opts.update(compress=self.compress, check_replicas=bool(check_replicas),
                    average_buffers=bool(buffers))
        if bucket_mb is not None:
            opts["bucket_mb"] = bucket_mb
        if opts.get("mode") is None and not os.environ.get(DistOptions.ENV["mode"]):
            opts["mode"] = default_mode(ctx)
        self.options = DistOptions.resolve(opts)   # checked even in a single process
        distributed = self.comm is not None and self.size > 1
        #: join()'s flag rides in the gradient's sum (uncompressed: the vector is summed
        #: as it is); compressed exchanges need a control allreduce of their own
        self._flag_in_grads = distributed and self.options.compress in ("", "none")
        self.layout = TorchLayout(params, names, buffers, flag_slot=self._flag_in_grads)
        self.reducer = None
        if self.comm is not None and self.size > 1:
            from dtnn.parallel.reducer import GradientReducer
            self.reducer = GradientReducer(self.comm, self.layout, self.options)
            self._check_same_layout()
        #: blocking mode: the reducer does nothing per gradient, so hooks skip it
        self._notify = self.reducer is not None and self.reducer.mode == "overlap"
        self._count = [0] * len(self.layout.params)
        self._in_step = False
        self._unused: List[int] = []
        self._ctrl_out = np.zeros(1, np.int32)
        self._ctrl_in = np.zeros(1, np.int32)
        self._ctrl_req = None
        #: ranks still training at the last step (join)
        self.last_active = self.size
        self.steps_done = 0
        self.paused = False              # DataParallel.no_sync()
        self.on_first_ready: Optional[Callable[[], None]] = None
        #: weakref to the DistributedOptimizer / DataParallel this bridge serves
        self.owner: Optional[weakref.ref] = None
        self.closed = False
        self.layout.attach()
        self._handles = []
        for g, p in enumerate(self.layout.params):
            self._handles.append(p.register_post_accumulate_grad_hook(self._hook_for(g)))
            _HOOKED[id(p)] = p
        _BRIDGES.append(weakref.ref(self))

    def _hook_for(self, g: int):
        def hook(_param: torch.Tensor) -> None:
            self._grad_ready(g)
        return hook

    def _check_same_layout(self) -> None:
        from dtnn.errors import UserError
        mine = (tuple((n, tuple(p.shape)) for n, p in zip(self.layout.names,
                                                             self.layout.params)),
                sorted(self.options.to_dict().items()), self.passes)
        table = self.comm.allgather(mine)
        bad = [r for r, t in enumerate(table) if t != table[0]]
        if bad:
            raise UserError(f"dtnn.torch: rank(s) {', '.join(map(str, bad))} have other "
                            "parameters (names/shapes), exchange options (compressor, "
                            "mode, bucket size, DTNN_* variables) or "
                            "backward_passes_per_step than rank 0: every rank must wrap "
                            "the same model the same way")

    # --- hooks ------------------------------------------------------------------------
    def _grad_ready(self, g: int) -> None:
        self.layout.adopt_grad(g)     # a copy only if .grad was not the view
        if self.paused:
            return
        c = self._count[g] = self._count[g] + 1
        if c < self.passes:
            return
        if c > self.passes:
            raise RuntimeError(
                f"dtnn.torch: gradients of {self.layout.names[g]!r} were computed "
                f"{c} times before the exchange (backward_passes_per_step="
                f"{self.passes}): call optimizer.step() or synchronize() after every "
                f"{self.passes} backward pass(es)")
        if not self._in_step:
            self._begin()
            if self.on_first_ready is not None:
                self.on_first_ready()
            for u in self._unused:   # known unused this step (DataParallel's traversal)
                if self._count[u] == 0:
                    self.layout.adopt_grad(u)
                    self._count[u] = self.passes
                    if self._notify:
                        self.reducer.on_grads_ready(u)
            self._unused = []
        if self._notify:
            self.reducer.on_grads_ready(g)

    def mark_unused(self, groups) -> None:
        """Groups whose parameters will get no gradient in the coming backward."""
        self._unused = list(groups)

    def _begin(self, active: int = 1) -> None:
        self._in_step = True
        if self.reducer is not None:
            if self._flag_in_grads:
                self.layout.flat_grads[self.layout.flag_index] = active
            else:
                self._ctrl_out[0] = active
                self._ctrl_req = self.comm.Iallreduce(self._ctrl_out, self._ctrl_in)
            self.reducer.start_step()

    @property
    def in_step(self) -> bool:
        return self._in_step

    # --- the end of a step --------------------------------------------------------------
    def synchronize(self, active: int = 1) -> None:
        """Average every gradient over the ranks (collective; see the module docstring)."""
        if not self._in_step:
            self._begin(active)
        for g, c in enumerate(self._count):
            if c < self.passes:
                self.layout.adopt_grad(g)   # no gradient this step: zeros (or the
                #                             accumulated passes, if fewer than `passes`)
        if self.reducer is not None:
            self.reducer.post_remaining()
            self.reducer.finish_step()
            if self._flag_in_grads:   # summed, then scaled by 1/size with the gradients
                self.last_active = int(round(float(
                    self.layout.flat_grads[self.layout.flag_index]) * self.size))
            else:
                self._ctrl_req.Wait()
                self._ctrl_req = None
                self.last_active = int(self._ctrl_in[0])
        self._count = [0] * len(self._count)
        self._unused = []
        self._in_step = False
        self.steps_done += 1

    def shadow_step(self) -> int:
        """One step of a rank that has joined: zero gradients, "not training"; returns
        how many ranks still train."""
        if self._in_step:
            raise RuntimeError("dtnn.torch.join() called between backward and step()")
        self.layout.zero_()
        self.synchronize(active=0)
        return self.last_active

    # --- checks, statistics, state --------------------------------------------------------
    def check_replicas(self) -> None:
        """Collective: ReplicaMismatchError unless parameters (and averaged buffers)
        are bit-identical on every rank."""
        if self.reducer is not None:
            self.reducer.check_replicas()

    def stats(self) -> Dict[str, Any]:
        s = self.reducer.stats() if self.reducer is not None else {"ranks": self.size}
        s.update(parameters=int(self.layout.numel), tensors=len(self.layout.params),
                 backward_passes_per_step=self.passes)
        return s

    def local_state(self) -> Dict[str, Any]:
        steps = self.reducer.steps_done if self.reducer is not None else self.steps_done
        ex = self.reducer.exchange if self.reducer is not None else None
        return {"spec": self.options.compress, "world_size": self.size,
                "steps_done": int(steps),
                f"rank{self.rank}": ex.local_state() if ex is not None else {}}

    def state_dict(self, all_ranks: bool = False) -> Dict[str, Any]:
        """The exchange's state (error-feedback residuals, PowerSGD's Q, the step counter
        the compressors' random streams are keyed by).  ``all_ranks``: collective,
        every rank's part (to resume exactly from one file written by rank 0)."""
        state = self.local_state()
        if all_ranks and self.reducer is not None:
            for part in self.comm.allgather(state):
                state.update({k: v for k, v in part.items() if k.startswith("rank")})
        return _to_torch(state)

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        state = _to_numpy(dict(state or {}))
        if not state:
            return
        self.steps_done = int(state.get("steps_done", self.steps_done))
        if self.reducer is None:
            return
        if f"rank{self.rank}" not in state:
            if state.get("spec") == self.options.compress and self.reducer.exchange is not None:
                from dtnn.log import get_logger
                get_logger().warning(
                    "dtnn.torch: the saved exchange state has no part for rank %d (saved "
                    "with state_dict() on one rank: state_dict(all_ranks=True) on every "
                    "rank resumes exactly); its error-feedback memory starts empty",
                    self.rank)
            self.reducer.steps_done = self.steps_done
            return
        self.reducer.load_state_dict(state)

    def close(self) -> None:
        """Remove the hooks (the gradients stay views of the buffer)."""
        for h in self._handles:
            h.remove()
        for p in self.layout.params:
            _HOOKED.pop(id(p), None)
        self._handles = []
        self.closed = True
