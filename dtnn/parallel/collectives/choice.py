"""Which allreduce algorithm a bucket goes by when ``dist.algorithm = "auto"`` and no
tuner has decided (``choose_algorithm``), and which collectives can carry a
compressor's payload (``candidate_collectives``: what the exchange tuner tries)."""
from __future__ import annotations

from typing import List

from dtnn.parallel.collectives.base import Topology

#: below this many bytes a bucket goes by MPI's allreduce (latency-bound: fewer steps)
SMALL_BUCKET_BYTES = 64 << 10


def hier_possible(topo: Topology) -> bool:
    """``hier`` needs several nodes with the same number (> 1) of ranks on each."""
    return topo.multi_node and topo.local_size > 1 and topo.uniform


def choose_algorithm(nbytes: int, topo: Topology, preferred: str = "auto") -> str:
    """The allreduce algorithm for one bucket of ``nbytes``.

    One node: MPI's (its shared-memory collectives beat a ring of point-to-point
    messages: 9 MiB on 2 ranks 2.9 ms vs 6.1 ms).  Several nodes: ``hier`` when every
    node runs several ranks, else ``ring`` -- on the simulated cluster MPICH's
    default moved 9 MiB over 4 hosts at 100 Mbit/s in 1.26-1.54 s (best-median),
    the ring in 1.19-1.27 s (bandwidth-optimal: 1.13 s), see
    ``benchmarks/results/scaling.md`` -- except small buckets, which go by MPI's
    (recursive doubling: log2 p steps instead of 2 (p-1))."""
    if preferred != "auto":
        if preferred == "hier" and not hier_possible(topo):
            return "ring" if topo.multi_node else "mpi"
        return preferred
    if not topo.multi_node or topo.size == 1:
        return "mpi"
    if nbytes < SMALL_BUCKET_BYTES:
        return "mpi"
    if hier_possible(topo):
        return "hier"
    return "ring"


def candidate_collectives(compressor, size: int) -> List[str]:
    """The collectives that can carry ``compressor``'s payload among ``size`` ranks,
    the exchange's own choice for it first."""
    from dtnn.parallel.exchange import choose_transport
    if compressor.summable:
        return ["allreduce"]
    out = [choose_transport(compressor, size), "allgather"]
    if getattr(compressor, "sparse", False):
        out += ["gtopk", "sparse"]
    if getattr(compressor, "chunkable", False):
        out.append("qring")
    return list(dict.fromkeys(out))


__all__ = ["SMALL_BUCKET_BYTES", "candidate_collectives", "choose_algorithm", "hier_possible"]
