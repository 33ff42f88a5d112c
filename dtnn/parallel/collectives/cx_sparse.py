"""Sparse transports for top-k: ``gtopk`` (balanced global top-k, as Ok-Topk) and
``sparse`` (SparCML's sparse allreduce with its switch to dense).

Both start with a *sparse reduce-scatter*: the index space of the unit is cut into N
ranges; every rank sends the entries of its local top-k (error feedback applied) that
fall into range j straight to rank j (N-1 messages of ~k/N entries each, whose sizes
the receiver learns from the message), and rank j sums what it got, rank by rank, into
a dense fp32 buffer of its range.  Then:

``gtopk``  rank j keeps the ceil(k/N) largest sums of its range; these fixed-size
           blocks go round a ring (allgather).  Every rank receives ~2k (N-1)/N
           entries per step, independent of N.  Error feedback: the local entries
           that did not make it into the global selection go back into the rank's
           residual, so nothing is lost (only delayed).
``sparse`` rank j sends its whole range to everybody, as (index, value) pairs or as a
           dense vector, whichever is smaller (the union of N ranks' indices gets
           dense as N grows): the exact sum of all local top-k, but up to N k entries.

Entries are (int32 index, float32 value); every rank decodes the same blocks in
range order, so replicas stay bit-identical.
"""
from __future__ import annotations

import math
from typing import List, Optional

import numpy as np

from dtnn.compress import kernels as K
from dtnn.parallel.collectives import base as B
from dtnn.parallel.collectives.transport import Transport


def _pack(idx: np.ndarray, val: np.ndarray) -> np.ndarray:
    out = np.empty(2 * idx.size, np.int32)
    out[:idx.size] = idx
    out[idx.size:] = val.view(np.int32)
    return out


def _unpack(words: np.ndarray):
    n = words.size // 2
    return words[:n], words[n:].view(np.float32)


class _StatusOp(B.Op):
    """Requests whose receive sizes are read from their statuses when done."""

    def __init__(self, recvs, sends, recv_bufs):
        super().__init__()
        from mpi4py import MPI
        self.MPI = MPI
        self.reqs = list(recvs) + list(sends)
        self.nrecv = len(recvs)
        self.bufs = recv_bufs
        self.statuses = [MPI.Status() for _ in self.reqs]
        self.counts: List[int] = []

    def progress(self) -> bool:
        if self.done:
            return True
        if self.reqs and not self.MPI.Request.Testall(self.reqs, self.statuses):
            return False
        self.counts = [s.Get_count(self.MPI.INT) for s in self.statuses[:self.nrecv]]
        self.received += 4 * sum(self.counts)
        self.reqs, self.done = [], True
        return True


class _SparseOp(B.ChainOp):
    def __init__(self, t: "SparseTransport", plan, tag: int):
        super().__init__()
        self.t, self.plan, self.tag = t, plan, tag
        p, r = t.size, t.rank
        n = plan.unit.size
        self.bounds = B.chunk_bounds(n, p)
        payload = t.cx.encode(plan)
        idx, val = t.compressor.entries(payload)
        if idx.size > 1 and np.any(idx[1:] < idx[:-1]):
            order = np.argsort(idx, kind="stable")
            idx, val = idx[order], val[order]
        self.idx, self.val, self.k = idx, val, idx.size
        self.cut = np.searchsorted(idx, self.bounds)
        self.stage = 0
        self.begin()

    def _piece(self, j: int) -> np.ndarray:
        a, b = self.cut[j], self.cut[j + 1]
        return _pack(self.idx[a:b], self.val[a:b])

    def _next(self):
        self.stage += 1
        t, p, r = self.t, self.t.size, self.t.rank
        if self.stage == 1:     # sparse reduce-scatter: pieces straight to their owner
            others = [j for j in range(p) if j != r]
            bufs = {j: np.empty(2 * self.k, np.int32) for j in others}
            recvs = [t.comm.Irecv(bufs[j], j, self.tag) for j in others]
            sends = []
            for j in others:
                piece = self._piece(j)
                sends.append(t.comm.Isend(piece, j, self.tag))
                self.sent += piece.nbytes
            self.rs = _StatusOp(recvs, sends, bufs)
            self.rs.others = others
            return self.rs
        if self.stage == 2:
            lo, hi = self.bounds[r], self.bounds[r + 1]
            dense = np.zeros(hi - lo, np.float32)
            touched = np.zeros(hi - lo, bool)
            pieces = {j: self.rs.bufs[j][:c] for j, c in zip(self.rs.others, self.rs.counts)}
            pieces[r] = self._piece(r)

            def reduce():
                for j in range(p):            # rank order: the same sum on every run
                    i, v = _unpack(pieces[j])
                    K.scatter_add(i - lo, v, 1.0, dense)
                    touched[i - lo] = True
                return self.t.finalise(self, dense, touched, lo)
            block = t.cx.timed(reduce)
            return self.t.allgather(self, block)
        self.t.cx.timed(self.t.decode, self)
        return None


class _BlockRing(B.Op):
    """Allgather of one block per rank around the ring (rank q's block is range q);
    sizes need not be known in advance: receives take ``max_words`` and forward
    exactly what arrived."""

    def __init__(self, comm, mine: np.ndarray, max_words: List[int], tag: int):
        super().__init__()
        from mpi4py import MPI
        self.MPI, self.comm, self.tag = MPI, comm, tag
        self.p, self.r = comm.Get_size(), comm.Get_rank()
        self.blocks: List[Optional[np.ndarray]] = [None] * self.p
        self.blocks[self.r] = mine
        self.max_words = max_words
        self.step = 0
        self._post()

    def _post(self):
        p, r, k = self.p, self.r, self.step
        send, recv = (r - k) % p, (r - k - 1) % p
        self.recv_c = recv
        self.rbuf = np.empty(self.max_words[recv], np.int32)
        self.status = self.MPI.Status()
        self.reqs = [self.comm.Irecv(self.rbuf, (r - 1) % p, self.tag),
                     self.comm.Isend(self.blocks[send], (r + 1) % p, self.tag)]
        self.sent += self.blocks[send].nbytes

    def progress(self) -> bool:
        while not self.done:
            if not self.MPI.Request.Testall(self.reqs, [self.status, self.MPI.Status()]):
                return False
            c = self.status.Get_count(self.MPI.INT)
            self.blocks[self.recv_c] = self.rbuf[:c]
            self.received += 4 * c
            self.step += 1
            if self.step == self.p - 1:
                self.reqs, self.done = [], True
            else:
                self._post()
        return True


@B.TRANSPORTS.register("sparse")
class SparseTransport(Transport):
    """SparCML: exact sum of the local top-k, each range sparse or dense."""
    name = "sparse"
    tags_per_op = 2      # reduce-scatter, allgather

    def __init__(self, cx, net, algorithm: str = "ring"):
        super().__init__(cx, net, algorithm)
        if not getattr(self.compressor, "sparse", False):
            from dtnn.errors import ConfigError
            raise ConfigError(f"dist.collective={self.name}: only for top-k, not "
                              f"{self.compressor.name}")

    def start(self, plan, tag=None):
        return _SparseOp(self, plan, self.reserve() if tag is None else tag)

    def finalise(self, op, dense, touched, lo) -> np.ndarray:
        nz = np.flatnonzero(touched)
        if 2 * nz.size < dense.size:        # 8 bytes per entry < 4 bytes per element
            return _pack((nz + lo).astype(np.int32), dense[nz])
        return dense.view(np.int32)

    def allgather(self, op, block):
        b = op.bounds
        cap = [max(b[j + 1] - b[j], 1) for j in range(self.size)]
        return _BlockRing(self.comm, block, cap, op.tag + 1)

    def decode(self, op) -> None:
        plan, cx = op.plan, self.cx
        plan.stage.fill(0.0)
        op.blocks = op.sub.blocks         # kept for inspection (tests, tools)
        for j, block in enumerate(op.blocks):
            lo, hi = op.bounds[j], op.bounds[j + 1]
            if not self._is_sparse(block, hi - lo):
                np.multiply(block.view(np.float32), np.float32(cx.alpha), out=plan.stage[lo:hi])
            else:
                i, v = _unpack(block)
                K.scatter_add(i, v, cx.alpha, plan.stage)
        self.after_decode(op)
        cx.write_back(plan)

    @staticmethod
    def _is_sparse(block, width) -> bool:
        return block.size != width     # dense: one word per element; sparse: fewer

    def after_decode(self, op) -> None:
        pass


@B.TRANSPORTS.register("gtopk")
class GlobalTopKTransport(SparseTransport):
    """Ok-Topk: ceil(k/N) largest sums per range, fixed-size blocks."""
    name = "gtopk"

    def _kj(self, op, j: int) -> int:
        return min(op.bounds[j + 1] - op.bounds[j], math.ceil(op.k / self.size))

    def finalise(self, op, dense, touched, lo) -> np.ndarray:
        kj = self._kj(op, self.rank)
        iv, vv = np.empty(kj, np.int32), np.empty(kj, np.float32)
        K.topk(dense, kj, None, False, iv, vv)
        return _pack(iv + lo, vv)

    def allgather(self, op, block):
        cap = [2 * self._kj(op, j) for j in range(self.size)]
        return _BlockRing(self.comm, block, cap, op.tag + 1)

    def _is_sparse(self, block, width) -> bool:
        return True

    def after_decode(self, op) -> None:
        res = self.cx.residual(op.plan.unit)
        if res is None:
            return
        chosen = np.zeros(op.plan.unit.size, bool)
        for block in op.blocks:
            chosen[_unpack(block)[0]] = True
        back = ~chosen[op.idx]          # sent, but not in the global selection
        res[op.idx[back]] += op.val[back]
