"""Process contexts: ``SerialContext`` for one process, ``MPIContext`` under MPI.

``get_context()`` picks one:

* ``DTNN_MPI=1``: MPI (even a world of one); ``DTNN_MPI=0``: serial, always;
* otherwise MPI when the launcher announced more than one process (``PMI_SIZE``,
  ``OMPI_COMM_WORLD_SIZE``, ``SLURM_STEP_NUM_TASKS``, ...) or when MPI was already
  initialised (e.g. by pytest-mpi) with a world larger than one;
* otherwise serial, and MPI is not initialised (a plain ``python`` run).

If the launcher says N > 1 but MPI initialises as a world of 1 (mpi4py linked against
another MPI than the launcher's), every process would train alone: ``get_context``
warns on stderr and returns a ``MismatchedContext`` whose ``make_reducer`` refuses to
train.
"""
from __future__ import annotations

import sys

from dtnn.parallel.launcher import launcher_size, mismatch_message, mpi_requested


def __getattr__(name: str):
    # the contexts need numpy: loaded on first use, so that importing a light module
    # of this package (options, launcher, failure) keeps `dtnn --help` fast
    if name in ("Context", "SerialContext", "MismatchedContext"):
        from dtnn.parallel import context
        return getattr(context, name)
    if name == "DistributedOptimizer":
        from dtnn.parallel.optimizer import DistributedOptimizer
        return DistributedOptimizer
    raise AttributeError(f"module 'dtnn.parallel' has no attribute {name!r}")

_context = None


def _mpi_already_initialized() -> bool:
    mod = sys.modules.get("mpi4py.MPI")
    if mod is None:
        return False
    try:
        return bool(mod.Is_initialized()) and not mod.Is_finalized()
    except Exception:  # pragma: no cover
        return False


def get_context(fresh: bool = False):
    """The context of this process (one per process; ``fresh`` makes a new one)."""
    global _context
    if _context is not None and not fresh:
        return _context
    _context = _make_context()
    return _context


def _make_context():
    from dtnn.parallel.context import MismatchedContext, SerialContext
    forced = mpi_requested()
    if forced is False:
        return SerialContext()
    env_size, env_var = launcher_size()
    if forced is None and env_size <= 1:
        if not _mpi_already_initialized():
            return SerialContext()
        from mpi4py import MPI
        if MPI.COMM_WORLD.Get_size() == 1:
            return SerialContext()
    try:
        from mpi4py import MPI
    except ImportError as exc:
        from dtnn.errors import UserError
        raise UserError(f"this job needs MPI (launched as {env_size} processes or "
                        f"DTNN_MPI=1) but mpi4py cannot be imported: {exc}") from None
    if env_size > 1 and MPI.COMM_WORLD.Get_size() == 1:
        message = mismatch_message(env_size, env_var, 1)
        sys.stderr.write(f"dtnn: warning: {message}\n")
        return MismatchedContext(message)
    from dtnn.parallel.mpi import MPIContext
    return MPIContext()


def per_rank_batch(cfg, size: int) -> int:
    """The batch each of ``size`` processes takes (see ``dtnn.parallel.scaling``)."""
    from dtnn.parallel.scaling import per_rank_batch as f
    return f(cfg, size)


__all__ = ["Context", "SerialContext", "MismatchedContext", "DistributedOptimizer",
           "get_context", "per_rank_batch"]
