"""``hier``: hierarchical allreduce for several ranks per node.

1. reduce-scatter inside the node (``node_comm``: shared memory; a ring over
   point-to-point): local rank l ends with the node's sum of one chunk of the vector
   (chunks cut in L = local size parts);
2. that chunk is allreduced across the nodes by local rank l of every node
   (``cross_comm``), all local ranks at once on disjoint chunks, with the ``inner``
   algorithm (``ring`` by default);
3. allgather inside the node puts the whole sum on every local rank.

Between hosts each node moves 2 (N-1)/N of the vector (N nodes), as if it were one
rank, instead of L times that for a flat ring whose every hop crosses hosts (ranks
placed round-robin).  Every element is summed at one place and copied from there:
replicas stay bit-identical.  Needs the same number of ranks on every node
(``Topology.uniform``); with one rank per node it is the inner algorithm.
"""
from __future__ import annotations

import numpy as np

from dtnn.parallel.collectives.base import (ALGORITHMS, Algorithm, ChainOp, DoneOp, Op,
                                            Topology, chunk_bounds)
from dtnn.parallel.collectives.ring import RingOp, owned_chunk


class HierOp(ChainOp):
    name = "hier"

    def __init__(self, topo: Topology, inner: Algorithm, buf: np.ndarray, tags, add=None):
        super().__init__()
        self.topo, self.inner, self.buf, self.add = topo, inner, buf, add
        self.tags = tags   # (node rs, inner, node ag), reserved in start order
        L, l = topo.local_size, topo.local_rank
        b = chunk_bounds(buf.size, L)
        c = owned_chunk(l, L)
        self.chunk = buf[b[c]:b[c + 1]]
        self.stage = 0
        self.begin()

    def _next(self):
        self.stage += 1
        node = self.topo.node_comm
        if self.stage == 1:   # node reduce-scatter (shared memory)
            return _Local(RingOp(node, self.buf, self.tags[0], self.add, phase="rs"))
        if self.stage == 2:   # across nodes, every local rank on its own chunk
            return self.inner.start(self.chunk, self.add, self.tags[1])
        if self.stage == 3:   # node allgather
            return _Local(RingOp(node, self.buf, self.tags[2], self.add, phase="ag"))
        return None


class _Local(Op):
    """An op whose bytes stay inside the node (not counted as network traffic)."""

    def __init__(self, op: Op):
        super().__init__()
        self.op = op

    def progress(self) -> bool:
        self.done = self.op.progress()
        return self.done

    def pending(self):
        return self.op.pending()

    def shared_reqs(self):
        return None if self.done else self.op.shared_reqs()


@ALGORITHMS.register("hier")
class HierarchicalAllreduce(Algorithm):
    name = "hier"

    def __init__(self, topo: Topology, inner: str = "ring"):
        super().__init__(topo)
        if not topo.uniform:
            from dtnn.errors import UserError
            raise UserError("dist.algorithm=hier needs the same number of ranks on every "
                            f"node ({topo.describe()})")
        cross = topo.cross_comm
        self.cross = Topology(cross, cross.Split(cross.Get_rank(), key=0))
        self.inner = ALGORITHMS.get(inner)(self.cross)
        if not self.inner.p2p:
            raise ValueError(f"hier: the inner algorithm must be point-to-point, not {inner}")
        self.inner_name = inner

    def start(self, buf: np.ndarray, add=None, tag=None) -> Op:
        if self.size == 1 or buf.size == 0:
            return DoneOp()
        if self.topo.local_size == 1:
            return self.inner.start(buf, add, None if tag is None else tag[1])
        return HierOp(self.topo, self.inner, buf, self.reserve() if tag is None else tag, add)

    def reserve(self):
        node_tag = self.topo.tags(2, self.topo.node_comm)
        return (node_tag, self.inner.reserve(), node_tag + 1)

    def bytes_per_rank(self, nbytes: int) -> float:
        """Bytes a rank sends between nodes (shared-memory traffic not counted)."""
        n = self.topo.nodes
        return 2.0 * (n - 1) / n * nbytes / self.topo.local_size if n > 1 else 0.0

    def describe(self) -> str:
        return f"hier({self.inner_name})"
