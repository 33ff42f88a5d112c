"""The process side of ``dtnn.torch``: ``init()``, who am I, and the abort path.

``init()`` takes dtnn's process context (``dtnn.parallel.get_context``): under
``mpiexec``/``srun`` an ``MPIContext`` (a clone of COMM_WORLD, so dtnn's messages never
match the user's own MPI traffic, plus the node-local communicator behind
``local_rank``/``local_size``); in a plain ``python script.py`` the serial context,
where every collective is the identity and MPI is never initialised.

Failure: a rank that raises while the others sit in a collective would leave them
waiting forever.  ``init()`` therefore chains ``sys.excepthook`` to dtnn's abort path (``dtnn.parallel.failure``): the
failing rank prints its traceback prefixed with ``[rank r/N]`` and calls
``MPI_Abort``, so the launcher ends the whole job with a non-zero status, as dtnn's
own trainer does.  ``init(abort_on_error=False)`` leaves the hooks alone.
"""
from __future__ import annotations

import os
import sys
import traceback
from typing import Any, Optional

_ctx = None
_hooks_installed = False


class NotInitializedError(RuntimeError):
    def __init__(self) -> None:
        super().__init__("dtnn.torch has not been initialised: call dtnn.torch.init() first")


def init(comm=None, threads: Optional[int] = None, abort_on_error: bool = True) -> None:
    """Start dtnn.torch (idempotent).

    ``comm``: an mpi4py communicator to run on (default COMM_WORLD when launched by
    MPI).  ``threads``: torch/BLAS/OpenMP threads per rank (default: leave them, unless
    several ranks share this host and ``OMP_NUM_THREADS`` is unset, then the cores
    are shared evenly).  ``abort_on_error``: an uncaught exception on any rank aborts
    the whole job (see the module docstring)."""
    global _ctx
    if _ctx is None or comm is not None:
        if comm is not None:
            from dtnn.parallel.mpi import MPIContext
            _ctx = MPIContext(comm)
        else:
            from dtnn.parallel import get_context
            _ctx = get_context()
            if not hasattr(_ctx, "comm") and getattr(_ctx, "message", None):
                from dtnn.errors import UserError
                raise UserError(_ctx.message)   # launcher/MPI mismatch
    if threads is not None:
        from dtnn.threads import set_threads
        set_threads(threads)
    elif _ctx.local_size > 1 and "OMP_NUM_THREADS" not in os.environ:
        from dtnn.threads import default_threads, set_threads
        set_threads(default_threads(_ctx.local_size))
    if abort_on_error:
        _install_abort_hooks()


def is_initialized() -> bool:
    return _ctx is not None


def context():
    """dtnn's process context (``SerialContext`` or ``MPIContext``)."""
    if _ctx is None:
        raise NotInitializedError()
    return _ctx


def comm():
    """The communicator dtnn.torch uses, or None in a single process."""
    return getattr(context(), "comm", None)


def rank() -> int:
    return int(context().rank)


def size() -> int:
    return int(context().size)


def local_rank() -> int:
    return int(context().local_rank)


def local_size() -> int:
    return int(context().local_size)


def cross_rank() -> int:
    """Index of this host among the hosts (its local rank 0's position)."""
    ctx = context()
    leader = getattr(ctx, "leader_comm", None)
    if getattr(ctx, "comm", None) is None:
        return 0
    mine = leader.Get_rank() if leader is not None else -1
    return int(ctx.node_comm.bcast(mine, root=0))


def cross_size() -> int:
    return int(getattr(context(), "num_nodes", 1))


def mpi_enabled() -> bool:
    return comm() is not None


def shutdown() -> None:
    """Forget the context (MPI itself is finalised by mpi4py at exit)."""
    global _ctx
    _ctx = None


def abort(message: str, code: int = 1) -> None:
    """Print ``message`` with the rank prefix and end the whole job (MPI_Abort); in a
    single process, raise SystemExit(code)."""
    from dtnn.parallel.failure import abort_if_distributed
    abort_if_distributed(message, code)
    sys.stderr.write(message.rstrip("\n") + "\n")
    raise SystemExit(code)


def _install_abort_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    previous = sys.excepthook

    def excepthook(kind, value, tb) -> None:
        if not issubclass(kind, KeyboardInterrupt):
            from dtnn.parallel.failure import abort_if_distributed
            abort_if_distributed("".join(traceback.format_exception(kind, value, tb)), 1)
        previous(kind, value, tb)

    sys.excepthook = excepthook
