# the exchange's own Python per step, without MPI and without the backward: one process
# plays rank 0 of 2 with a communicator whose sends and receives complete at once
# (MPI.REQUEST_NULL; the received payloads are whatever the buffers hold, so the codec
# runs on junk: its time is still measured by the codec timer and taken out).  Per spec
# and step: post every bucket of vgg11_bn w0.5 in order, advance the ops until done
# (final decodes included); prints the median over STEPS of (wall - codec timer) and of
# the codec timer, ms per step.  Usage: python opmicro.py STEPS SPEC...
import sys, time
import numpy as np
from mpi4py import MPI
from dtnn.threads import set_threads; set_threads(1)
from dtnn.models import build_model
from dtnn.compress.base import build_compressor
from dtnn.parallel.exchange import CompressedExchange
from dtnn.parallel.buckets import plan_buckets
import dtnn.parallel.collectives as C


class FakeComm:
    def Get_size(self): return 2
    def Get_rank(self): return 0
    def Isend(self, *a, **k): return MPI.REQUEST_NULL
    def Irecv(self, *a, **k): return MPI.REQUEST_NULL
    def Iallreduce(self, *a, **k): return MPI.REQUEST_NULL


class FakeTopo:
    size, rank, nodes, local_size, local_rank, uniform, multi_node = 2, 0, 2, 1, 0, True, True
    def __init__(self):
        self.comm, self._t = FakeComm(), 0
    def tags(self, n=1, comm=None):
        self._t = (self._t + n) % 10000
        return self._t


steps = int(sys.argv[1])
net = build_model('vgg11_bn', (3, 32, 32), 10, seed=0, width=0.5)
net.flat_grads[:] = np.random.default_rng(0).standard_normal(net.flat_grads.size).astype(np.float32)
for spec in sys.argv[2:]:
    name, _, opts = spec.partition("|")
    comp, ef = build_compressor(name)
    coll = "qring" if "qring" in opts else "auto"
    buckets = plan_buckets(net, 4 << 20)
    cx = CompressedExchange(FakeTopo(), net, buckets, comp, ef, min_size=1024,
                            collective=coll)
    rows = []
    for s in range(steps + 3):
        cx.begin(s)
        t = time.perf_counter()
        ops = []
        for k in range(len(cx.plans)):
            ops += cx.post(k)
        while C.poll(ops):
            pass
        rows.append((time.perf_counter() - t - cx.codec_seconds, cx.codec_seconds))
    r = np.median(np.array(rows[3:]), axis=0) * 1e3
    print("%-36s %s buckets %d: python+mpi %.3f ms/step, codec %.3f ms/step"
          % (spec, cx.collective, len(cx.plans), r[0], r[1]), flush=True)
