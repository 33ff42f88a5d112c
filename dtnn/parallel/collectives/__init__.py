"""Collective algorithms of the gradient exchange (one per module, by name).

Allreduce of a float32 vector (in-place sum), ``ALGORITHMS``:

    mpi    MPI_Iallreduce: the MPI library's own choice (MPICH: by message size)
    ring   reduce-scatter + allgather around a ring over point-to-point messages
    hier   hierarchical: reduce-scatter inside each node, the node's chunks across
           nodes (every local rank on its own chunk), allgather inside the node

``build(name, topo)`` makes one; ``choice.choose_algorithm`` is the per-size rule used when
``dist.algorithm = "auto"`` and no tuner decided.  Compressed payloads have their own
collectives next to these (``qring``, ``sparse``, ``gather``), picked by the
exchange from the compressor's payload and the world size.
"""
from __future__ import annotations

from dtnn.parallel.collectives.base import (ALGORITHMS, TRANSPORTS, Algorithm, DoneOp, Op,
                                            Topology, chunk_bounds, poll, wait)
from dtnn.parallel.collectives import hier, native, ring  # noqa: F401  (register)
from dtnn.parallel.collectives import (cx_allgather, cx_allreduce, cx_qring,  # noqa: F401
                                       cx_sparse)


def build(name: str, topo: Topology, **kwargs) -> Algorithm:
    return ALGORITHMS.get(name)(topo, **kwargs)


__all__ = ["ALGORITHMS", "TRANSPORTS", "Algorithm", "DoneOp", "Op", "Topology", "build", "chunk_bounds",
           "poll", "wait"]
