"""``DistributedOptimizer``: an optimizer whose step first averages the gradients of
every process (the Horovod / ChainerMN shape, over dtnn's own gradient exchange).

One call per step::

    opt = dtnn.DistributedOptimizer(dtnn.optim.SGD(model, lr=0.05, momentum=0.9),
                                    compress="powersgd:rank=2")
    loss = opt.step(model, x, y)      # forward, loss, backward + exchange, update

or with your own forward and backward::

    logits = model.forward(x, training=True)
    loss = loss_fn.forward(logits, y)
    model.backward(loss_fn.backward())   # the exchange overlaps with it (per-layer hook)
    opt.step()                           # waits for the exchange, then updates

Construction (a collective: every process calls it) checks that all replicas have the
same architecture, gives dropout a per-process stream, builds the gradient exchange
(``ctx.make_reducer``: buckets, overlap, compression with error feedback) and, unless
``broadcast=False``, copies rank 0's parameters, buffers and optimizer state to every
process.  In a single process there is no exchange and ``step`` is exactly the
wrapped optimizer's step.  ``dtnn train`` runs its steps through this class, so a
custom loop over the same model, data order and options gives the same numbers.
"""
from __future__ import annotations

import sys
from typing import Any, Dict, Optional

import numpy as np

from dtnn.parallel.context import ReducerOptions
from dtnn.parallel.options import DistOptions


class DistributedOptimizer:
    """Wrap ``optimizer`` so that each ``step`` uses gradients averaged over processes.

    Arguments:
        optimizer: a ``dtnn.optim`` optimizer (``dtnn.optim.SGD(model, ...)``).
        model: the model it updates; defaults to the model the optimizer was built from.
        ctx: the process context (default ``dtnn.parallel.get_context()``).
        compress: gradient compression spec, e.g. ``"topk:ratio=0.01"``,
            ``"powersgd:rank=2"`` (shortcut for ``options["compress"]``).
        options: the exchange options (``DistOptions`` or a dict of its fields, e.g.
            ``{"bucket_mb": 8, "mode": "blocking"}``; see ``dtnn.parallel.options``).
        loss: the loss of ``step(model, x, y)`` (default softmax cross-entropy).
        schedule: optional LR schedule; each step sets ``lr = schedule.lr_at(steps)``.
        broadcast: start every replica from rank 0's state (False when every process
            has loaded the same checkpoint).
    """

    def __init__(self, optimizer, model=None, *, ctx=None, compress: Optional[str] = None,
                 options: ReducerOptions = None, loss=None, schedule=None,
                 broadcast: bool = True):
        self.optimizer = optimizer
        self.model = model if model is not None else getattr(optimizer, "model", None)
        if self.model is None:
            raise TypeError("DistributedOptimizer: pass model= (this optimizer was built "
                            "from flat vectors, not from a model)")
        if ctx is None:
            from dtnn.parallel import get_context
            ctx = get_context()
        self.ctx = ctx
        if compress is not None:
            base = options.to_dict() if isinstance(options, DistOptions) else dict(options or {})
            options = {**base, "compress": compress}
        #: the gradient exchange (``GradientReducer``); None in a single process
        self.exchange = ctx.make_reducer(self.model, options)
        if broadcast:
            ctx.sync_model(self.model, optimizer)
        if loss is None:
            from dtnn.layers.loss import SoftmaxCrossEntropy
            loss = SoftmaxCrossEntropy()
        self.loss_fn = loss
        self.schedule = schedule
        #: clip the averaged gradients' global L2 norm to this before each update (0 = off)
        self.clip_grad_norm = 0.0
        #: called with the averaged gradients' norm before each update (it may raise, e.g.
        #: the divergence guard on a non-finite norm: every rank sees the same norm)
        self.on_grad_norm = None
        #: ``on_grad_norm`` acts on a non-finite norm only (the divergence guard): with
        #: ``dist.defer_update`` the step may then be deferred, and each bucket's
        #: averaged gradients are checked before that bucket's update, ``on_grad_norm``
        #: being called with the bucket's norm when it is not finite
        #: (``deferred_check`` is True meanwhile)
        self.grad_check_per_bucket = False
        self.deferred_check = False
        #: the norm of the last step's averaged gradients (when clipping or watched)
        self.grad_norm: Optional[float] = None
        #: the logits of the last ``step(model, x, y)``
        self.logits: Optional[np.ndarray] = None
        self._started = False
        #: leave the exchange in flight after backward and update each bucket's
        #: parameters when the next forward reaches them (``dist.defer_update``)
        self.defer_update = bool(self.exchange is not None
                                 and self.exchange.options.defer_update)
        #: the update decodes the quantised ring's held payloads (``dist.fuse_update``)
        self.fuse_update = bool(self.exchange is not None
                                and self.exchange.options.fuse_update)
        if self.exchange is not None:
            # a plain model.backward(dy) drives the exchange too (see Model.backward)
            self.model.grad_hook = self._on_grads_ready
            # a forward pass (training, eval, predict) completes the deferred buckets it
            # reads; reading the state (state_dict, load) completes them all
            self.model.forward_hook = self.exchange.before_group
            self.model.flush_hook = self.flush
            # a program that ends after its last step: complete that step's exchange
            # before MPI is finalized (this runs before mpi4py's own exit handler)
            import atexit
            import weakref
            atexit.register(_flush_at_exit, weakref.ref(self))

    # --- the step -------------------------------------------------------------------
    @property
    def lr(self) -> float:
        """The wrapped optimizer's learning rate (settable)."""
        return self.optimizer.lr

    @lr.setter
    def lr(self, value: float) -> None:
        self.optimizer.lr = value

    def backward(self, dy: np.ndarray) -> None:
        """``model.backward(dy)`` with the exchange of each bucket started as soon as
        its gradients are ready."""
        if self.exchange is None:
            self.model.backward(dy)
            return
        self._on_grads_ready(None)  # start the step before the first layer's backward
        self.model.backward(dy, on_grads_ready=self._on_grads_ready)

    def step(self, model=None, x: Optional[np.ndarray] = None,
             y: Optional[np.ndarray] = None) -> Optional[float]:
        """With ``x`` and ``y``: forward, loss, backward (exchanging gradients), update;
        returns this process's mean loss on the batch.  Without: update from the
        gradients of the last ``model.backward`` (averaged first)."""
        loss = None
        if x is not None:
            if model is not None and model is not self.model:
                raise ValueError("DistributedOptimizer.step: model is not the one this "
                                 "optimizer updates")
            if y is None:
                raise TypeError("DistributedOptimizer.step(model, x, y): y is missing")
            logits = self.model.forward(x, training=True)
            loss = float(self.loss_fn.forward(logits, y))
            self.backward(self.loss_fn.backward())
            self.logits = logits
        defer = self.defer_update and self._started and self.exchange.can_defer()
        if ((defer or (self.fuse_update and self._started)) and self.clip_grad_norm <= 0
                and (self.on_grad_norm is None or self.grad_check_per_bucket)):
            # deferred: the buckets stay in flight; the update of each one's parameters
            # runs when the next forward reaches them (or at flush()), with this step's
            # learning rate and step count, fixed here -- the same bits as below.
            # dist.fuse_update (deferred or not): the exchange hands the update the held
            # qring payloads to decode (dtnn.parallel.held) -- the same bits again
            if self.schedule is not None:
                self.optimizer.lr = self.schedule.lr_at(self.optimizer.steps)
            self.exchange.post_remaining()
            update = self.optimizer.begin_step()
            if self.on_grad_norm is not None:
                update = self._checked(update, defer)
            self.exchange.finish_step(defer=defer, on_bucket=update)
            self._started = False
            return loss
        self.synchronize()
        if self.clip_grad_norm > 0 or self.on_grad_norm is not None:
            from dtnn.optim.clip import clip_grad_norm
            self.grad_norm = clip_grad_norm(self.model.flat_grads, self.clip_grad_norm)
            if self.on_grad_norm is not None:
                self.on_grad_norm(self.grad_norm)
        if self.schedule is not None:
            self.optimizer.lr = self.schedule.lr_at(self.optimizer.steps)
        self.optimizer.step()
        return loss

    def _checked(self, update, deferred: bool = True):
        """``update(lo, hi)`` preceded by the check of that range's averaged gradients:
        a non-finite norm goes to ``on_grad_norm`` (which raises) before any parameter
        of the range is updated.  The guard's test is unchanged: ``grad_norm`` over a
        bucket is non-finite iff one of its elements is, or a block's float32 sum of
        squares overflows (the whole vector's norm: iff one of its blocks' does), and
        every rank sees the same averaged bucket, so all stop at the same bucket.
        ``deferred``: the step is deferred (``deferred_check`` is set while the hook
        runs); False for the synchronous ``dist.fuse_update`` step, checked the same way
        over the whole vector."""
        from dtnn.optim.clip import grad_norm
        grads, hook = self.model.flat_grads, self.on_grad_norm
        held = self.exchange.held

        def on_bucket(lo: int, hi: int) -> None:
            if held:
                # dist.fuse_update: the payloads' scales may prove the range finite
                # (then the test below cannot fire); else decode them and test as usual
                items = held.proves_finite(lo, hi, update)
                if items is not None:
                    held.run(update, lo, hi, items)
                    return
                held.materialize(lo, hi)
            norm = grad_norm(grads[lo:hi])
            if not np.isfinite(norm):
                self.deferred_check = deferred
                try:
                    hook(norm)
                finally:
                    self.deferred_check = False
            update(lo, hi)
        on_bucket.takes_held = True
        return on_bucket

    def synchronize(self) -> None:
        """Finish the gradient exchange of this step (a no-op alone); ``step`` calls it.
        Call it yourself to look at (or clip) the averaged gradients before stepping."""
        if self.exchange is None:
            return
        if self.exchange.pending and not self._started:
            self.flush()   # a deferred step's buckets (no backward ran since)
            return
        if not self._started:  # backward ran without the hook: exchange everything now
            self._on_grads_ready(None)
        self.exchange.post_remaining()
        self.exchange.finish_step()   # held payloads (dist.fuse_update) decoded here
        self._started = False

    def _on_grads_ready(self, layer: Optional[int]) -> None:
        if not self._started:
            self.exchange.start_step()   # the forward pass is over: buffers are final
            self._started = True
        if layer is not None:
            self.exchange.on_grads_ready(layer)

    def flush(self) -> None:
        """Complete a deferred step (``dist.defer_update``): wait for the buckets still
        in flight and apply their parameters' update.  A no-op otherwise.  Every library
        entry point that reads parameters calls it (a forward pass, ``state_dict``,
        ``load_state_dict``, the trainer's end); call it yourself before reading
        ``model.flat_params`` or a layer's ``params`` directly between steps."""
        if self.exchange is not None:
            self.exchange.complete_all()

    def discard(self) -> None:
        """Complete a deferred step's exchange *without* its update (every rank: a run
        stopped by a decision all ranks took alike, such as the divergence guard's, so
        that nothing is left in flight and the exit handler has nothing to apply)."""
        if self.exchange is not None:
            self.exchange.complete_all(update=False)

    def zero_grad(self) -> None:
        """Nothing to do: ``model.backward`` overwrites the gradients (torch-shaped
        loops may keep calling it)."""

    # --- state ----------------------------------------------------------------------
    def close(self) -> None:
        """Complete a deferred step and detach from the model (its hooks); stop the
        exchange thread if any."""
        self.flush()
        if self.exchange is not None:
            for hook in ("grad_hook", "forward_hook", "flush_hook"):
                if getattr(self.model, hook, None) is not None:
                    setattr(self.model, hook, None)
            self.exchange.close()

    def stats(self) -> Dict[str, Any]:
        """Exchange timing and bytes per step (``GradientReducer.stats``); {} alone."""
        return self.exchange.stats() if self.exchange is not None else {}

    def state_dict(self, gather: bool = True) -> Dict[str, Any]:
        """``{"optimizer": ..., "compressor": ...}``.  Collective under MPI (every
        rank's error-feedback memory is gathered on rank 0; other ranks get an empty
        ``compressor`` entry): every process must call it.  ``gather=False``: each
        rank's ``compressor`` holds its own entry only (``GradientReducer.state_dict``)."""
        self.flush()
        state: Dict[str, Any] = {"optimizer": self.optimizer.state_dict()}
        if self.exchange is not None:
            state["compressor"] = self.exchange.state_dict(gather)
        return state

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        """Restore ``state_dict()`` (every process passes the whole dict)."""
        self.flush()
        self.optimizer.load_state_dict(state["optimizer"])
        if self.exchange is not None and state.get("compressor"):
            self.exchange.load_state_dict(state["compressor"])


def _flush_at_exit(ref) -> None:
    opt = ref()
    if getattr(sys, "last_value", None) is not None:
        # the program ends with an uncaught exception (set before atexit runs): its
        # peers may be anywhere, even inside this very exchange, so completing it could
        # wait forever; the failure path (MPI_Abort, the watchdog) ends the job instead
        return
    if opt is not None and opt.exchange is not None and opt.exchange.pending:
        from mpi4py import MPI
        if MPI.Is_initialized() and not MPI.Is_finalized():
            opt.flush()
