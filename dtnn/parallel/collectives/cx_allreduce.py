"""``allreduce`` transport: summable payloads (fp16, random-k, PowerSGD) summed by an
allreduce algorithm, extra rounds chained in the same op.

The payload is summed in place by the ``algorithm`` (``ring`` by default: point-to-
point, so PowerSGD's second round can start the moment the first one of the same
bucket arrives, whatever the other buckets do).  float16 payloads travel as uint16
and are added with dtnn's float16 kernels (``fp16_sum.half_add``; with
``fp16:reduce_op=mpi`` and the ``mpi`` algorithm, MPI's own float16 sum).
"""
from __future__ import annotations

import numpy as np

from dtnn.parallel.collectives import base as B
from dtnn.parallel.collectives.transport import Transport

MAX_ROUNDS = 4


class _SummableOp(B.ChainOp):
    name = "allreduce"

    def __init__(self, t: "AllreduceTransport", plan, tags):
        super().__init__()
        self.t, self.plan, self.tags = t, plan, tags
        self.round = 0
        self.payload = t.cx.encode(plan)
        self.begin()

    def _start(self, payload: np.ndarray) -> B.Op:
        t = self.t
        tag = self.tags[self.round] if self.round < len(self.tags) else None
        self.round += 1
        if payload.dtype == np.float16 and t.half_add is not None:
            return t.algo.start(payload.view(np.uint16), t.half_add, tag)
        return t.algo.start(payload, None, tag)

    def _next(self):
        t, cx, plan = self.t, self.t.cx, self.plan
        if self.round == 0:
            return self._start(self.payload)
        if cx.rounds == "blocking":        # the rest after the last bucket, in order
            plan.payload = self.payload
            return None
        nxt = cx.timed(t.compressor.next_round, self.payload, plan.unit)
        if nxt is not None:
            cx.sent_bytes += nxt.nbytes
            self.payload = nxt
            return self._start(nxt)
        cx.timed(cx.decode_sum, self.payload, plan)
        return None


@B.TRANSPORTS.register("allreduce")
class AllreduceTransport(Transport):
    name = "allreduce"
    tags_per_op = MAX_ROUNDS

    def __init__(self, cx, net, algorithm: str = "ring"):
        super().__init__(cx, net, algorithm)
        if not self.compressor.summable:
            from dtnn.errors import ConfigError
            raise ConfigError(f"dist.collective=allreduce: {self.compressor.name} payloads "
                              "are not summable")
        from dtnn.compress.base import Compressor
        from dtnn.parallel.collectives import build
        half = np.dtype(self.compressor.payload_dtype) == np.float16
        fp16_mpi = half and getattr(self.compressor, "reduce_op", "dtnn") == "mpi"
        rounds = type(self.compressor).next_round is not Compressor.next_round
        # an MPI collective must start in the same order on every rank: fine for a
        # one-round payload posted when its bucket closes, not for a later round or a
        # transport started by a hierarchical op
        deferred = rounds or cx.hierarchical
        if fp16_mpi and not deferred:
            algorithm = "mpi"
        elif algorithm not in ("mpi", "ring") or (algorithm == "mpi" and deferred):
            algorithm = "ring"
        self.algo = build(algorithm, net)
        self.half_add = None
        if half and not fp16_mpi:   # MPI's float16 sum only where asked for
            from dtnn.parallel.fp16_sum import half_add
            self.half_add = half_add

    def reserve(self):
        if not self.algo.p2p:
            return ()
        return tuple(self.algo.reserve() for _ in range(MAX_ROUNDS))

    def start(self, plan, tag=None):
        return _SummableOp(self, plan, self.reserve() if tag is None else tag)
