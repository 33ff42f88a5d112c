"""The top-level functions of the public API: ``dtnn.init``, ``dtnn.save``, ``dtnn.load``.

A custom training loop (the same steps ``dtnn train`` takes)::

    import dtnn
    ctx = dtnn.init()                                    # serial or MPI: the launcher decides
    train, test = dtnn.data.load("fashion-mnist")
    model = dtnn.models.build("simplecnn", train.sample_shape, train.num_classes)
    opt = dtnn.DistributedOptimizer(dtnn.optim.SGD(model, lr=0.05, momentum=0.9))
    for epoch in range(2):
        for x, y in dtnn.data.loader(train, batch_size=64, ctx=ctx).epoch(epoch):
            loss = opt.step(model, x, y)
    print(dtnn.evaluate(model, test, ctx).accuracy)
    dtnn.save("model.h5", model, opt, data=train)
"""
from __future__ import annotations

import sys
import traceback
from typing import Any, Dict, Optional

from dtnn.parallel.context import Context


def init(threads: int = 0, *, logging: bool = True) -> Context:
    """Start dtnn in this process and return its ``Context``.

    Under ``mpiexec``/``srun`` (several processes) the context is MPI's, else serial.
    Sets the BLAS/OpenMP/torch threads (``threads``, default: this host's cores shared
    by its processes), the convolution tuner's defaults (as ``dtnn train``), rank-0
    logging, and, with several processes, makes an uncaught exception, a Ctrl-C, a stall
    (``dist.stall_timeout``) or an early exit on one rank end the whole job instead of
    leaving the others waiting (``dtnn.parallel.failure.watch_job``).  Safe to call again."""
    from dtnn.config import TuneConfig
    from dtnn.parallel import get_context
    from dtnn.threads import default_threads, set_threads
    import dtnn.tune

    ctx = get_context()
    set_threads(threads or default_threads(ctx.local_size))
    if logging:
        from dtnn.log import setup_logging
        setup_logging(ctx.rank, ctx.size)
    if dtnn.tune.current_comm() is not ctx:
        dtnn.tune.configure(TuneConfig().options(), comm=ctx)
    if ctx.size > 1:
        _abort_on_uncaught_exception()
        from dtnn.parallel.failure import watch_job
        watch_job(ctx)  # stalls, Ctrl-C and a rank leaving early end the whole job
    return ctx


def _abort_on_uncaught_exception() -> None:
    previous = sys.excepthook
    if getattr(previous, "_dtnn", False):
        return

    def hook(kind, value, tb):
        from dtnn.errors import UserError
        from dtnn.parallel.failure import abort_if_distributed
        text = (f"error: {value}" if isinstance(value, UserError)
                else "".join(traceback.format_exception(kind, value, tb)))
        abort_if_distributed(text, 2 if isinstance(value, UserError) else 1)
        previous(kind, value, tb)

    hook._dtnn = True  # type: ignore[attr-defined]
    sys.excepthook = hook


def save(path: str, model, optimizer=None, *, data=None, epoch: int = 0,
         meta: Optional[Dict[str, Any]] = None, ctx=None) -> None:
    """Write an HDF5 checkpoint of ``model`` (and ``optimizer``: a plain optimizer or a
    ``DistributedOptimizer``, whose compressor state of every rank is included).

    ``data``: the training ``Dataset``; its class names and normalisation statistics
    are stored so ``dtnn eval``/``predict``/``serve`` and ``dtnn.load`` preprocess
    inputs the same way.  Collective under MPI (every process calls it; rank 0 writes).
    """
    from dtnn import __version__
    from dtnn.io.checkpoint import save_checkpoint
    if ctx is None:
        ctx = getattr(optimizer, "ctx", None)
    if ctx is None:
        from dtnn.parallel import get_context
        ctx = get_context()
    states: Dict[str, Any] = {}
    step = 0
    if optimizer is not None:
        if hasattr(optimizer, "exchange"):   # DistributedOptimizer: collective
            states = optimizer.state_dict()
            step = int(optimizer.optimizer.steps)
        else:
            states = {"optimizer": optimizer.state_dict()}
            step = int(getattr(optimizer, "steps", 0))
    if not states.get("compressor"):
        states.pop("compressor", None)
    info: Dict[str, Any] = {"dtnn_version": __version__, "processes": ctx.size}
    if data is not None:
        info["classes"] = list(data.classes)
        info["normalization"] = data.meta.get("normalization")
    info.update(meta or {})
    if ctx.is_root:
        save_checkpoint(path, model, step=step, epoch=epoch, states=states, meta=info)
    ctx.barrier()


def load(path: str):
    """Read a checkpoint (``dtnn.save`` or ``dtnn train``): a ``Checkpoint`` with the
    rebuilt ``model``, ``states`` (``"optimizer"``, ``"compressor"``, ...), ``meta``
    (``classes``, ``normalization``, ``config``...), ``step`` and ``epoch``.  Resume
    with ``model`` and ``DistributedOptimizer(...).load_state_dict(ckpt.states)``."""
    from dtnn.io.checkpoint import load_checkpoint
    return load_checkpoint(path)
