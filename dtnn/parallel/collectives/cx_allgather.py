"""``allgather`` transport: every rank's opaque payload to every rank, decoded in rank
order (int8, QSGD, TernGrad, sign, top-k, bf16 on 2 ranks; any compressor on request).

The payloads travel as the allgather half of a ring (``RingOp(phase="ag")``) over a
buffer of N equal slots, rank q's payload in slot ``owned_chunk(q)``: N-1 messages of
one payload per rank, each link used in both directions.  Each rank receives N-1
payloads, so the traffic grows with N (see ``qring`` and ``gtopk``).
"""
from __future__ import annotations

import numpy as np

from dtnn.parallel.collectives import base as B
from dtnn.parallel.collectives.ring import RingOp, owned_chunk
from dtnn.parallel.collectives.transport import Transport


class _GatherOp(B.ChainOp):
    name = "allgather"

    def __init__(self, t: "AllgatherTransport", plan, tag: int):
        super().__init__()
        self.t, self.plan, self.tag = t, plan, tag
        payload = t.cx.encode(plan)
        m, p = payload.nbytes, t.size
        self.m = m
        self.recv = np.empty(p * m, np.uint8)
        me = owned_chunk(t.rank, p)
        self.recv[me * m:(me + 1) * m] = payload.view(np.uint8)
        self.stage = 0
        self.begin()

    def _next(self):
        self.stage += 1
        t = self.t
        if self.stage == 1:
            return RingOp(t.comm, self.recv, self.tag, phase="ag")
        cx, plan, m = t.cx, self.plan, self.m
        comp = t.compressor

        payloads = [self.recv[s * m:(s + 1) * m]
                    for s in (owned_chunk(q, t.size) for q in range(t.size))]

        def decode():
            if plan.out_direct:   # straight into the flat ranges, piece by piece
                for s, e, v in plan.pieces(cx.grads, 0, plan.unit.size, True):
                    for q, pq in enumerate(payloads):
                        comp.decompress_window(pq, plan.unit, s, e, v, cx.alpha,
                                               accumulate=q > 0)
                return
            for q, pq in enumerate(payloads):  # the first payload writes, the others add
                (comp.decompress_add if q else comp.decompress_set)(
                    pq, plan.stage, cx.alpha, plan.unit)
            cx.write_back(plan)
        cx.timed(decode)
        self.recv = None
        return None


@B.TRANSPORTS.register("allgather")
class AllgatherTransport(Transport):
    name = "allgather"

    def start(self, plan, tag=None):
        if self.compressor.summable:
            from dtnn.errors import ConfigError
            raise ConfigError("dist.collective=allgather: summable payloads go by "
                              "allreduce")
        return _GatherOp(self, plan, self.reserve() if tag is None else tag)
