"""The process context the training engine talks to: who am I, how do I reduce.

The engine never imports MPI itself.  It asks a context for its rank and size, for
sums of small arrays (metrics, confusion matrices), and for a gradient reducer that
is driven from ``Model.backward``'s per-layer hook.  ``SerialContext`` is the
single-process one; ``dtnn.parallel.mpi.MPIContext`` implements the same methods.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from dtnn.errors import UserError


class SerialContext:
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

    def node_allreduce(self, values: np.ndarray, op: str = "max") -> np.ndarray:
        """Reduce over the ranks of this node (op: sum, max, min); alone: a copy."""
        return np.asarray(values).copy()

    def barrier(self) -> None:
        pass

    def configure(self, options: Optional[dict] = None) -> None:
        """Reducer options (the config's [dist] table): checked, nothing to use alone."""
        from dtnn.parallel.options import DistOptions
        DistOptions.resolve(options)

    def make_reducer(self, model, options: Optional[dict] = None):
        """No gradient exchange in a single process."""
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

    def make_reducer(self, model, options: Optional[dict] = None):
        raise UserError(self.message)

    def describe(self) -> str:
        return "single process (LAUNCHER/MPI MISMATCH)"
