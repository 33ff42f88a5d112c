# micro (not a library tool): the cost of one hook's advance of the ops in flight, with
# real MPI requests that do not complete (each op: an Irecv + an Isend to the next rank, the
# peer's matching Isend is posted only at the end), as C.poll does from the backward hooks.
# usage: mpiexec -n 2 python pollmicro.py [NOPS ...]; prints us per poll on rank 0
import os, sys, time
import numpy as np
from mpi4py import MPI
from dtnn.parallel import collectives as C
from dtnn.parallel.collectives.base import Op, ReqOp, ChainOp

comm = MPI.COMM_WORLD
r, p = comm.rank, comm.size
if r == 0:
    import dtnn; print("dtnn from", os.path.dirname(dtnn.__file__), flush=True)

class _Wait(Op):           # two requests in flight, one step (like a ring hop)
    def __init__(self, reqs):
        super().__init__(); self.reqs = reqs
    def _advance(self):
        return True

class _Then(ChainOp):      # a chained op around one (the small tensors' allreduce)
    def __init__(self, op):
        super().__init__(); self.first = op; self.begin()
    def _next(self):
        op, self.first = self.first, None
        return op

N = 4000
for nops in [int(a) for a in sys.argv[1:]] or [1, 3, 5]:
    bufs = [np.zeros(16, np.float32) for _ in range(2 * nops)]
    ops = []
    for k in range(nops):
        rq = comm.Irecv(bufs[2 * k], (r - 1) % p, 100 + k)
        op = _Wait([rq])
        ops.append(_Then(op) if k == nops - 1 else op)
    done_ops = [C.DoneOp() for _ in range(2)]   # finished ops stay in the executor's list
    allops = done_ops + ops
    comm.Barrier()
    best = []
    for rep in range(5):
        t = time.perf_counter()
        for i in range(N):
            C.poll(allops)
        best.append((time.perf_counter() - t) / N)
    comm.Barrier()
    for k in range(nops):
        comm.Send(bufs[2 * k + 1], (r + 1) % p, 100 + k)
    C.wait(allops)
    assert all(op.done for op in ops)
    if r == 0:
        print("ops in flight %d (+2 done): %.2f us per poll (min of 5 x %d)" % (nops, 1e6 * min(best), N), flush=True)
