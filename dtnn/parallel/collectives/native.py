"""``mpi``: MPI's own ``MPI_Iallreduce`` (the algorithm the MPI library picks).

With MPICH the choice comes from ``MPIR_CVAR_IALLREDUCE_INTRA_ALGORITHM`` (``auto``
by default: a table by message size and communicator size).  Nonblocking collectives
advance only inside MPI calls unless MPICH runs an asynchronous progress thread, so
this op is progressed like every other one (hooks, exchange thread, final wait).
"""
from __future__ import annotations

import numpy as np

from dtnn.parallel.collectives.base import ALGORITHMS, Algorithm, DoneOp, Op


class _NativeOp(Op):
    name = "mpi"

    def __init__(self, comm, buf: np.ndarray, nbytes_rank: float, half: bool = False):
        super().__init__()
        from mpi4py import MPI
        if half:
            from dtnn.parallel.fp16_sum import iallreduce_half
            self.reqs = [iallreduce_half(comm, MPI, buf)]
        else:
            self.reqs = [comm.Iallreduce(MPI.IN_PLACE, buf, op=MPI.SUM)]
        self.sent = self.received = nbytes_rank

    def _advance(self) -> bool:
        return True


@ALGORITHMS.register("mpi")
class NativeAllreduce(Algorithm):
    name = "mpi"
    p2p = False   # a collective: only as the first stage of an op

    def start(self, buf: np.ndarray, add=None, tag=None) -> Op:
        if self.size == 1 or buf.size == 0:
            return DoneOp()
        if add is not None:   # float16 payloads: dtnn's MPI op (dtnn.parallel.fp16_sum)
            return _NativeOp(self.comm, buf, self.bytes_per_rank(buf.nbytes), half=True)
        return _NativeOp(self.comm, buf, self.bytes_per_rank(buf.nbytes))

    def bytes_per_rank(self, nbytes: int) -> float:
        # recursive halving/doubling (MPICH's large-message default for 2^k ranks):
        # the bandwidth-optimal volume; other rank counts send more
        p = self.size
        return 2.0 * (p - 1) / p * nbytes if p > 1 else 0.0
