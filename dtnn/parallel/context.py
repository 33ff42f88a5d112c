"""The process context the training engine talks to: who am I, how do I reduce.

The engine never imports MPI itself.  It asks a context for its rank and size, for
sums of small arrays (metrics, confusion matrices), and for a gradient reducer that
is driven from ``Model.backward``'s per-layer hook.  ``Context`` is the typed
protocol; ``SerialContext`` (one process) and ``dtnn.parallel.mpi.MPIContext``
implement it, and ``tests/parallel/test_context_protocol.py`` checks that both do.
"""
from __future__ import annotations

from typing import Any, Mapping, Optional, Protocol, Union, runtime_checkable

import numpy as np

from dtnn.errors import UserError
from dtnn.parallel.options import DistOptions

#: what ``make_reducer`` accepts: resolved options, or a mapping of explicit values
#: (resolved over the defaults and the ``DTNN_*`` environment), or None (the same, empty)
ReducerOptions = Union[DistOptions, Mapping[str, Any], None]


@runtime_checkable
class Context(Protocol):
    """Who this process is in the job and how it talks to the others.

    Everything above ``dtnn.parallel`` (trainer, evaluation, tuner, CLI) uses only
    these names, so the same code runs alone and under ``mpiexec``."""

    rank: int         #: this process, 0 .. size - 1
    size: int         #: processes in the job
    local_rank: int   #: this process among those on its host
    local_size: int   #: processes on this host
    num_nodes: int    #: hosts in the job

    @property
    def is_root(self) -> bool:
        """True on rank 0, the process that logs and writes files."""

    def allreduce_sum(self, values: np.ndarray) -> np.ndarray:
        """Element-wise sum of ``values`` over all processes (a new array)."""

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every process."""

    def node_allreduce(self, values: np.ndarray, op: str = "max") -> np.ndarray:
        """Reduce ``values`` (op: sum, max, min) over the processes of this host."""

    def job_allreduce(self, values: np.ndarray, op: str = "max") -> np.ndarray:
        """Reduce ``values`` (op: sum, max, min) over every process of the job."""

    def barrier(self) -> None:
        """Wait until every process gets here."""

    def make_reducer(self, model, options: ReducerOptions = None):
        """The gradient exchange for ``model`` (None when alone): a
        ``dtnn.parallel.reducer.GradientReducer`` driven by the training step."""

    def sync_model(self, model, optimizer=None) -> None:
        """Copy rank 0's parameters, buffers (and optimizer state) to every process."""

    def abort(self, code: int = 1) -> None:
        """End the whole job now (every process) with exit status ``code``."""

    def describe(self) -> str:
        """One line saying where this process runs."""


def resolve_options(options: ReducerOptions) -> DistOptions:
    """``options`` as a checked ``DistOptions``; already resolved ones pass through."""
    if isinstance(options, DistOptions):
        options.validate()
        return options
    return DistOptions.resolve(options)


class SerialContext(Context):
    """The context of a single process: every collective is the identity."""

    rank = 0
    size = 1
    local_rank = 0
    local_size = 1
    num_nodes = 1

    @property
    def is_root(self) -> bool:
        return self.rank == 0

    def allreduce_sum(self, values: np.ndarray) -> np.ndarray:
        return np.asarray(values).copy()

    def broadcast_object(self, obj: Any) -> Any:
        return obj

    def gather_object(self, obj: Any) -> Any:
        """Every rank's ``obj`` as a list on rank 0 (None elsewhere)."""
        return [obj]

    def node_allreduce(self, values: np.ndarray, op: str = "max") -> np.ndarray:
        """Reduce over the ranks of this node (op: sum, max, min); alone: a copy."""
        return np.asarray(values).copy()

    def job_allreduce(self, values: np.ndarray, op: str = "max") -> np.ndarray:
        """Reduce over every rank of the job (op: sum, max, min); alone: a copy."""
        return np.asarray(values).copy()

    def barrier(self) -> None:
        pass

    def make_reducer(self, model, options: ReducerOptions = None):
        """No gradient exchange in a single process (the options are still checked)."""
        resolve_options(options)
        return None

    def sync_model(self, model, optimizer=None) -> None:
        """Make every replica start from rank 0's state (nothing to do alone)."""

    def abort(self, code: int = 1) -> None:
        raise SystemExit(code)

    def describe(self) -> str:
        return "single process"


class MismatchedContext(SerialContext):
    """The launcher started several processes but MPI sees a world of one.

    Read-only commands (``dtnn info``) work and show the warning; training refuses,
    because every process would train (and write its run directory) alone."""

    def __init__(self, message: str):
        self.message = message

    def make_reducer(self, model, options: ReducerOptions = None):
        raise UserError(self.message)

    def describe(self) -> str:
        return "single process (LAUNCHER/MPI MISMATCH)"
