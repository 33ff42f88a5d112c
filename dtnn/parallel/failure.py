"""Ending a distributed job when one rank fails, is interrupted or leaves.

If one rank raises, the others block forever in their next collective.  So under
MPI with more than one process the failing rank prints its message (the one-line
``UserError`` text, or the traceback of a bug), prefixed with the rank, and calls
``MPI_Abort``: the launcher (hydra, Open MPI's prterun, srun) then kills every
process, stopped ones included, and exits non-zero.  A rank killed by a signal is
handled by the launcher itself: hydra notices the dead process and tears the job down.

``protect_job(ctx, stall_timeout)`` wraps a training run:

* one process: SIGINT/SIGTERM raise ``Interrupted`` (a ``KeyboardInterrupt``), held
  back while a checkpoint is written and re-raised at the next step if some callback
  swallowed it (see ``dtnn.parallel.interrupts``);
* several processes: the watchdog thread (``dtnn.parallel.watchdog``) ends the job
  on SIGINT/SIGTERM and on stalls, and anything that leaves the block on one rank
  -- an exception, ``KeyboardInterrupt``, ``sys.exit(0)`` or any other early exit --
  aborts the whole job at once instead of leaving the others waiting.
"""
from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from contextlib import contextmanager
from typing import Iterator, Optional

_abort_lock = threading.Lock()


def distributed_world():
    """(rank, size, COMM_WORLD) if MPI is initialised with size > 1, else None."""
    mod = sys.modules.get("mpi4py.MPI")
    if mod is None:
        return None
    try:
        if not mod.Is_initialized() or mod.Is_finalized():
            return None
        comm = mod.COMM_WORLD
        if comm.Get_size() <= 1:
            return None
        return comm.Get_rank(), comm.Get_size(), comm
    except Exception:  # pragma: no cover
        return None


def abort_job(message: str, code: int) -> None:
    """Print ``message`` (rank-prefixed) and abort the whole MPI job; never returns.

    Safe from any thread; when two threads (or paths) abort at once only the first
    prints.  Outside a multi-process job: print and ``os._exit(code)``."""
    if not _abort_lock.acquire(blocking=False):
        threading.Event().wait(30)  # the other path is aborting; it ends this process
        os._exit(code or 1)
    world = distributed_world()
    prefix = f"[rank {world[0]}/{world[1]}] " if world else ""
    text = "".join(f"{prefix}{line}\n" for line in message.rstrip("\n").splitlines())
    try:
        try:
            sys.stdout.flush()
        except Exception:
            pass
        sys.stderr.write(text)
        sys.stderr.flush()
    finally:
        try:
            if world is not None:
                # the launcher forwards this rank's stderr through a pipe; MPI_Abort tears
                # the job down at once and can beat the message to the terminal
                time.sleep(0.2)
                world[2].Abort(code or 1)
        finally:
            # MPICH's MPI_Abort can return to the caller after notifying the launcher;
            # never let this rank run on (or print the error a second time)
            os._exit(code or 1)


def abort_if_distributed(message: str, code: int) -> None:
    """Print ``message`` with the rank prefix and abort the whole job (no return);
    does nothing (returns) outside a multi-process MPI job."""
    if distributed_world() is None:
        return
    abort_job(message, code)


def exit_message(exc: BaseException) -> tuple:
    """(one-line message or traceback, exit status) for an exception ending a rank."""
    from dtnn.errors import UserError
    from dtnn.parallel.interrupts import Interrupted
    if isinstance(exc, Interrupted):
        return f"dtnn: interrupted by {exc.signal_name}", exc.exit_status
    if isinstance(exc, KeyboardInterrupt):
        return "dtnn: interrupted", 130
    if isinstance(exc, SystemExit):
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return (f"dtnn: this rank left the job early (exit status {code}) while the other "
                "ranks were still running: ending the job", code or 1)
    if isinstance(exc, UserError):
        return f"dtnn: error: {exc}", 2
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)), 1


@contextmanager
def protect_job(ctx, stall_timeout: Optional[float] = None) -> Iterator[None]:
    """See the module docstring.  Collective under MPI (starts the watchdog)."""
    from dtnn.parallel import interrupts
    comm = getattr(ctx, "comm", None)
    if getattr(ctx, "size", 1) <= 1 or comm is None:
        with interrupts.handled(record_only=False):
            yield
        return
    from dtnn.parallel import watchdog
    wd = watchdog.start(comm, stall_timeout or 0.0)
    try:
        with interrupts.handled(record_only=True, wakeup_fd=wd.signal_w):
            yield
    except BaseException as exc:  # noqa: B902 - every way out of one rank ends the job
        if getattr(exc, "collective", False):
            raise   # raised by every rank at the same step (TrainingDiverged): no abort
        message, code = exit_message(exc)
        abort_job(message, code)


def watch_job(ctx, stall_timeout: Optional[float] = None) -> None:
    """``protect_job`` for a custom training loop, from now until the process ends
    (``dtnn.init()`` calls it): the watchdog runs (stall detection, the exit check)
    and SIGINT/SIGTERM end the whole job.  Collective; nothing to do alone.
    ``stall_timeout`` defaults to ``dist.stall_timeout``'s (``DTNN_STALL_TIMEOUT``)."""
    comm = getattr(ctx, "comm", None)
    if getattr(ctx, "size", 1) <= 1 or comm is None:
        return
    from dtnn.parallel import interrupts, watchdog
    if stall_timeout is None:
        from dtnn.parallel.options import DistOptions
        stall_timeout = DistOptions.resolve().stall_timeout
    wd = watchdog.start(comm, stall_timeout)
    interrupts.install(record_only=True, wakeup_fd=wd.signal_w)
