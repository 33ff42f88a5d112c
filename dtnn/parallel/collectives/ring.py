"""``ring``: reduce-scatter + allgather around a ring, over point-to-point messages.

The vector is cut into p chunks.  Reduce-scatter: in step s (0..p-2) rank r sends
chunk (r - s) mod p to rank r+1 and receives chunk (r - s - 1) mod p from rank r-1,
adding it to its own; after p-1 steps rank r holds the full sum of chunk (r + 1) mod
p.  Allgather: the same rotation forwards the finished chunks, received straight into
place.  Every rank sends and receives 2 (p-1)/p of the vector, the minimum for an
allreduce, and uses both directions of its link at once; each step is one message per
neighbour, so large chunks keep the per-message cost negligible.

``RingOp(..., phase="rs")`` stops after the reduce-scatter (rank r then holds the
sum of chunk ``owned_chunk(r, p)`` = r + 1), ``phase="ag"`` runs only the allgather
of chunks so owned (the hierarchical algorithm uses both halves on the node).

Everything is point-to-point: messages of operations in flight at the same time are
kept apart by their tag, so a ring may start at any moment (when a previous stage of
a chained op completes, which happens at different times on different ranks) --
unlike an MPI collective, which every rank must start in the same order.

Bit-identical replicas: chunk c is summed once, by its owner (rank c - 1), in ring
order, and then copied unchanged to everybody.
"""
from __future__ import annotations

import numpy as np

from dtnn.parallel.collectives.base import ALGORITHMS, Algorithm, DoneOp, Op, chunk_bounds


def owned_chunk(rank: int, size: int) -> int:
    """The chunk a rank holds summed after the reduce-scatter phase."""
    return (rank + 1) % size


PHASES = {"both", "rs", "ag"}


class RingOp(Op):
    name = "ring"

    def __init__(self, comm, buf: np.ndarray, tag: int, add=None, phase: str = "both"):
        super().__init__()
        #: ``add(own, received)``: own += received (float16 payloads bring their own)
        self.add = add
        self.comm = comm
        self.buf = buf
        self.p = comm.Get_size()
        self.r = comm.Get_rank()
        self.right = (self.r + 1) % self.p
        self.left = (self.r - 1) % self.p
        self.tag = tag
        self.bounds = chunk_bounds(buf.size, self.p)
        biggest = max(self.bounds[k + 1] - self.bounds[k] for k in range(self.p))
        self.tmp = np.empty(biggest if phase != "ag" else 0, buf.dtype)
        # steps 0..p-2 reduce-scatter, p-1..2p-3 allgather
        self.step = self.p - 1 if phase == "ag" else 0
        self.last = self.p - 1 if phase == "rs" else 2 * (self.p - 1)
        self.recv_chunk = -1
        if self.step < self.last:
            self._post()
        else:
            self.done, self.finished = True, self.started

    def _chunk(self, c: int) -> np.ndarray:
        c %= self.p
        return self.buf[self.bounds[c]:self.bounds[c + 1]]

    def _post(self) -> None:
        s, p, r = self.step, self.p, self.r
        reduce = s < p - 1
        k = s if reduce else s - (p - 1)
        send_c = (r - k) % p if reduce else (r + 1 - k) % p
        recv_c = (r - k - 1) % p if reduce else (r - k) % p
        send = self._chunk(send_c)
        recv = self.tmp[:self._chunk(recv_c).size] if reduce else self._chunk(recv_c)
        self.recv_chunk = recv_c
        comm, tag = self.comm, self.tag
        self.reqs = [comm.Irecv(recv, source=self.left, tag=tag),
                     comm.Isend(send, dest=self.right, tag=tag)]
        self.sent += send.nbytes
        self.received += recv.nbytes

    def _advance(self) -> bool:
        if self.step < self.p - 1:
            own = self._chunk(self.recv_chunk)
            if self.add is None:
                np.add(own, self.tmp[:own.size], out=own)
            else:
                self.add(own, self.tmp[:own.size])
        self.step += 1
        if self.step >= self.last:
            return True
        self._post()
        return False


@ALGORITHMS.register("ring")
class RingAllreduce(Algorithm):
    name = "ring"

    def start(self, buf: np.ndarray, add=None, tag=None) -> Op:
        if self.size == 1 or buf.size == 0:
            return DoneOp()
        return RingOp(self.comm, buf, self.reserve() if tag is None else tag, add)

    def bytes_per_rank(self, nbytes: int) -> float:
        p = self.size
        return 2.0 * (p - 1) / p * nbytes
