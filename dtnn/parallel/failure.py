"""Ending a distributed job when one rank fails.

If one rank raises, the others block forever in their next collective.  So under
MPI with more than one process the CLI prints the failing rank's message (the
one-line ``UserError`` text, or the traceback of a bug), prefixed with the rank, and
calls ``MPI_Abort``: the launcher (hydra, Open MPI's prterun, srun) then kills every
process and exits non-zero.  A rank killed by a signal is handled by the launcher
itself: hydra notices the dead process and tears the job down.
"""
from __future__ import annotations

import os
import sys


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


def abort_if_distributed(message: str, code: int) -> None:
    """Print ``message`` with the rank prefix and abort the whole job (no return);
    does nothing (returns) outside a multi-process MPI job."""
    world = distributed_world()
    if world is None:
        return
    rank, size, comm = world
    text = "".join(f"[rank {rank}/{size}] {line}\n" for line in message.rstrip("\n").splitlines())
    try:
        sys.stdout.flush()
        sys.stderr.write(text)
        sys.stderr.flush()
    finally:
        try:
            comm.Abort(code)
        finally:
            # MPICH's MPI_Abort can return to the caller after notifying the launcher;
            # never let this rank run on (or print the error a second time)
            os._exit(code or 1)
