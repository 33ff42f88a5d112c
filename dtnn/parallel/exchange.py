"""The compressed gradient exchange the ``GradientReducer`` delegates to.

Per bucket (a contiguous slice of ``model.flat_grads``):

* tensors with at least ``min_size`` elements form the bucket's *unit*; if they are
  not contiguous in the flat vector (a small bias between two weights) they are
  copied into a staging vector first, unless the compressor encodes from / decodes
  into the flat ranges directly (random-k over ``allreduce``: ``compress_ranges``;
  ``DTNN_CX_STAGE=always`` forces the copy, the reference the tests compare with);
* the first payload decoded into a unit writes it (``decompress_set``) instead of
  zero-filling and adding;
* the smaller tensors (biases, BatchNorm scales) of *all* buckets are copied into one
  fp32 vector and averaged by one uncompressed allreduce started when the last bucket
  closes ("batched together");
* the unit is compressed (with error feedback if on) and handed to a *transport*, the
  collective that moves this compressor's payloads (``dtnn.parallel.collectives``,
  registry ``TRANSPORTS``), which also decodes the average into the gradient when it
  completes:

  ``allreduce``  summable payloads (fp16, random-k, PowerSGD's P and Q) summed by an
                 allreduce algorithm (``ring`` over point-to-point by default); extra
                 rounds (PowerSGD's Q = M^T P) start as soon as the previous round
                 of the same bucket arrives;
  ``allgather``  opaque payloads collected from every rank and decoded in rank order
                 (each rank receives N-1 payloads: traffic grows with N);
  ``qring``      quantised reduce-scatter + allgather: every hop decodes, sums in
                 fp32 and re-quantises (stochastic rounding or error feedback), then
                 the owner's final payload goes round unchanged: 2 (N-1)/N payloads;
  ``gtopk``      top-k: sparse reduce-scatter by index range, then a balanced global
                 top-k (k/N entries per range) allgathered (Ok-Topk);
  ``sparse``     top-k: sparse reduce-scatter, each range sent sparse or dense,
                 whichever is smaller, to everybody (SparCML's switch).

  ``collective = "auto"`` picks by payload and world size (``choose_transport``).
* Hierarchical (several ranks per node, ``hierarchical=True``): the node's ranks send
  their unit to the node leader over shared memory, the leaders run the transport
  between nodes (compression on the inter-node part only), and the leader sends the
  decoded average back.

Every rank decodes the same bytes in the same order, so replicas stay bit-identical.
``DTNN_CX_ROUNDS=blocking`` (``rounds="blocking"``) runs the extra rounds after the
last bucket, one at a time in bucket order: the reference the tests compare the
pipelined rounds with.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from dtnn.compress.base import Compressor, Unit
from dtnn.compress.memory import ErrorFeedback
from dtnn.parallel import collectives as C
from dtnn.parallel.collectives.base import TRANSPORTS, ChainOp, Op, ReqOp, Topology
from dtnn.parallel.held import HeldDecodes

#: how extra rounds (PowerSGD's second allreduce) run: "pipelined" or "blocking"
ROUNDS = ("pipelined", "blocking")


def _merge(ranges: List[Tuple[int, int]]) -> List[Tuple[int, int]]:
    out: List[Tuple[int, int]] = []
    for a, b in sorted(ranges):
        if out and out[-1][1] == a:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


@dataclass
class Plan:
    unit: Optional[Unit]
    ranges: List[Tuple[int, int]]        # big tensors' ranges in flat_grads
    stage: Optional[np.ndarray] = None   # the unit's vector (a view if contiguous)
    staged: bool = False                 # stage is a copy that must be written back
    payload: Optional[np.ndarray] = None  # summable payload awaiting blocking rounds
    direct: bool = False                 # staged, but encoded from / decoded into the
                                         # flat ranges (no staging copy) this step
    out_direct: bool = False             # decoded into the flat ranges (no write-back)
    zeroed: bool = False                 # the encode left the input zero (moved into the
                                         # residual): the decode need not zero-fill
    starts: Optional[List[int]] = None   # each range's offset inside the unit
    cache: Dict[str, Any] = field(default_factory=dict)  # the transports' per-bucket
                                         # layouts, built once (cx_qring._Layout)

    def pieces(self, grads: np.ndarray, lo: int, hi: int,
               direct: bool) -> List[Tuple[int, int, np.ndarray]]:
        """Elements [lo, hi) of the unit as ``(s, e, view)`` pieces: the flat gradient's
        ranges (``direct``) or the staging vector (one piece)."""
        if not direct:
            return [(lo, hi, self.stage[lo:hi])]
        out = []
        for (a, b), s in zip(self.ranges, self.starts):
            s0, s1 = max(lo, s), min(hi, s + b - a)
            if s0 < s1:
                out.append((s0, s1, grads[a + s0 - s:a + s1 - s]))
        return out


def choose_transport(compressor: Compressor, size: int) -> str:
    """The collective for a compressor's payloads on ``size`` ranks (``auto``).

    Summable payloads: allreduce.  Opaque ones: on 2 ranks an allgather receives one
    payload, as little as any scheme, with a single quantisation; from 3 ranks on the
    allgather's N-1 payloads per rank outgrow the 2 (N-1)/N of a reduce-scatter +
    allgather: ``qring`` for quantisers, ``gtopk`` for top-k."""
    if compressor.summable:
        return "allreduce"
    if size <= 2:
        return "allgather"
    if getattr(compressor, "sparse", False):
        return "gtopk"
    if getattr(compressor, "chunkable", False):
        return "qring"
    return "allgather"


class CompressedExchange:
    def __init__(self, topo: Topology, model, buckets, compressor: Compressor,
                 error_feedback: bool, min_size: int, seed: int = 0,
                 rounds: Optional[str] = None, collective: str = "auto",
                 algorithm: str = "ring", hierarchical: bool = False):
        rounds = (rounds or os.environ.get("DTNN_CX_ROUNDS", "") or "pipelined").lower()
        if rounds not in ROUNDS:
            raise ValueError(f"rounds must be one of {', '.join(ROUNDS)}, got {rounds!r}")
        from mpi4py import MPI
        self.MPI = MPI
        self.rounds = rounds
        self._stage_always = os.environ.get("DTNN_CX_STAGE", "").lower() == "always"
        self.topo = topo
        self.size, self.rank = topo.size, topo.rank
        self.compressor = compressor
        compressor.setup(self.size, self.rank, seed)
        self.ef = ErrorFeedback() if error_feedback else None
        self.grads = model.flat_grads
        self.alpha = 1.0 / self.size
        self.plans: List[Plan] = []
        small: List[Tuple[int, int]] = []
        for a, b, _ in buckets:
            slots = sorted((s for s in model.slots if a <= s.offset < b), key=lambda s: s.offset)
            big = [s for s in slots if s.size >= max(1, min_size)]
            small += [(s.offset, s.offset + s.size) for s in slots if s.size < max(1, min_size)]
            if not big:
                self.plans.append(Plan(None, []))
                continue
            tensors, off = [], 0
            for s in big:
                tensors.append((off, tuple(s.shape)))
                off += s.size
            ranges = _merge([(s.offset, s.offset + s.size) for s in big])
            plan = Plan(Unit(len(self.plans), off, tensors), ranges)
            plan.starts = list(np.cumsum([0] + [b - a for a, b in ranges[:-1]]).tolist())
            if len(ranges) == 1:
                plan.stage = self.grads[ranges[0][0]:ranges[0][1]]
            else:
                plan.stage, plan.staged = np.empty(off, np.float32), True
            self.plans.append(plan)
        self.small_ranges = _merge(small)
        self.small_buf = np.empty(sum(b - a for a, b in self.small_ranges), np.float32)
        # the inter-node network: every rank, or one leader per node (hierarchical)
        self.hierarchical = bool(hierarchical and topo.multi_node and topo.local_size > 1)
        self.net: Optional[Topology] = topo
        if self.hierarchical:
            leaders = topo.comm.Split(0 if topo.local_rank == 0 else MPI.UNDEFINED, topo.rank)
            self.net = (Topology(leaders, leaders.Split(leaders.Get_rank(), key=0))
                        if topo.local_rank == 0 else None)
        net_size = topo.nodes if self.hierarchical else self.size
        self.collective = (choose_transport(compressor, net_size) if collective == "auto"
                           else collective)
        self.algorithm = algorithm
        self._transports: Dict[str, Any] = {}
        self.transport = None
        self.set_collective(self.collective)
        self.small_algo = C.build(algorithm, topo)
        self._posted = 0
        self.step = 0
        #: dist.fuse_update: the qring's final payloads are held for the optimizer's
        #: update to decode (``dtnn.parallel.held``), set by the reducer
        self.fuse_update = False
        self.held = HeldDecodes(self.grads)
        #: per step: seconds compressing / decoding, payload bytes this rank sent
        self.codec_seconds = 0.0
        self.sent_bytes = 0

    def set_collective(self, name: str) -> None:
        """Use transport ``name`` from the next bucket on (the tuner switches them
        between steps; built once, on the ranks of the inter-node network)."""
        self.collective = name
        if self.net is None:
            return
        t = self._transports.get(name)
        if t is None:
            t = self._transports[name] = TRANSPORTS.get(name)(self, self.net, self.algorithm)
        self.transport = t

    @property
    def compressed_elements(self) -> int:
        return sum(p.unit.size for p in self.plans if p.unit is not None)

    def begin(self, step: int) -> None:
        self.step = step
        self._posted = 0
        self.codec_seconds = 0.0
        self.sent_bytes = 0

    # --- services for the transports -------------------------------------------------
    def timed(self, fn, *args, **kwargs):
        """Run a codec function, adding its time to ``codec_seconds``."""
        t = time.perf_counter()
        out = fn(*args, **kwargs)
        self.codec_seconds += time.perf_counter() - t
        return out

    def residual(self, unit: Unit) -> Optional[np.ndarray]:
        return self.ef.residual(unit.index, unit.size) if self.ef is not None else None

    def encode(self, plan: Plan) -> np.ndarray:
        """The unit's payload (error feedback applied); counts it as sent.  Compressors
        that can (``moves_input``: random-k) move the input into the residual, leaving it
        zero, so that ``decode_sum`` skips its zero-fill."""
        res = self.residual(plan.unit)
        kw = {}
        if res is not None and getattr(self.compressor, "moves_input", False):
            kw = {"move": True}
        plan.zeroed = bool(kw)
        if plan.direct:
            payload = self.timed(self.compressor.compress_ranges, self.grads, plan.ranges,
                                 plan.unit, res, **kw)
        else:
            payload = self.timed(self.compressor.compress, plan.stage, plan.unit, res, **kw)
        self.sent_bytes += payload.nbytes
        return payload

    def write_back(self, plan: Plan) -> None:
        if plan.staged and not plan.out_direct:
            o = 0
            for a, b in plan.ranges:
                self.grads[a:b] = plan.stage[o:o + b - a]
                o += b - a

    # --- post one bucket ----------------------------------------------------------------
    def post(self, k: int) -> List[Op]:
        """Start bucket ``k``'s exchange; returns its ops (they decode when done)."""
        plan = self.plans[k]
        ops: List[Op] = []
        if plan.unit is not None:
            # the allreduce transport only encodes and decodes the unit (cx.encode,
            # cx.decode_sum): compressors that can do that on the flat ranges skip the copy
            # qring and allgather decode windows straight into the flat ranges
            # (decompress_window); qring also reads its chunks from them
            free = plan.staged and not self.hierarchical and not self._stage_always
            comp, name = self.compressor, self.collective
            plan.direct = free and (
                (name == "allreduce" and self.grads.size < 2 ** 31
                 and hasattr(comp, "compress_ranges"))
                or (name == "qring" and comp.windowed))
            plan.out_direct = plan.direct or (free and name == "allgather" and comp.windowed)
            if plan.staged and not plan.direct:
                t = time.perf_counter()
                o = 0
                for a, b in plan.ranges:
                    plan.stage[o:o + b - a] = self.grads[a:b]
                    o += b - a
                self.codec_seconds += time.perf_counter() - t
            plan.unit.step = self.step
            if self.hierarchical:
                ops.append(_NodeLeaderOp(self, plan))
            else:
                ops.append(self.transport.start(plan))
        self._posted += 1
        if self._posted == len(self.plans) and self.small_buf.size:
            o = 0
            for a, b in self.small_ranges:
                self.small_buf[o:o + b - a] = self.grads[a:b]
                o += b - a
            self.sent_bytes += self.small_buf.nbytes
            ops.append(_ThenOp(self.small_algo.start(self.small_buf), self._small_done))
        return ops

    def _small_done(self) -> None:
        self.small_buf *= np.float32(self.alpha)
        o = 0
        for a, b in self.small_ranges:
            self.grads[a:b] = self.small_buf[o:o + b - a]
            o += b - a

    def finish_rounds(self) -> float:
        """``rounds="blocking"``: the remaining rounds of every bucket, in bucket order,
        each waited for before the next starts (after every op completed; the same
        algorithm as the pipelined rounds, so the same sums); seconds spent."""
        t0 = time.perf_counter()
        for plan in self.plans:
            if plan.payload is None:
                continue
            payload = plan.payload
            while True:
                nxt = self.timed(self.compressor.next_round, payload, plan.unit)
                if nxt is None:
                    break
                C.wait([self.transport.algo.start(nxt)])
                self.sent_bytes += nxt.nbytes
                payload = nxt
            self.timed(self.decode_sum, payload, plan)
            plan.payload = None
        return time.perf_counter() - t0

    def decode_sum(self, payload: np.ndarray, plan: Plan) -> None:
        """Decode a summed payload into the unit's gradient (the average)."""
        kw = {"zeroed": True} if plan.zeroed else {}
        plan.zeroed = False
        if plan.direct:
            self.compressor.decompress_set_ranges(payload, self.grads, plan.ranges,
                                                  self.alpha, plan.unit, **kw)
            return
        self.compressor.decompress_set(payload, plan.stage, self.alpha, plan.unit, **kw)
        self.write_back(plan)

    # --- state ----------------------------------------------------------------------------
    def local_state(self) -> Dict[str, Any]:
        return {"ef": self.ef.state_dict() if self.ef is not None else {},
                "compressor": self.compressor.state_dict()}

    def load_local_state(self, state: Dict[str, Any]) -> None:
        if self.ef is not None:
            self.ef.load_state_dict(state.get("ef", {}) or {})
        self.compressor.load_state_dict(state.get("compressor", {}) or {})


class _ThenOp(ChainOp):
    """Run ``then()`` once ``op`` is done."""

    def __init__(self, op: Op, then):
        super().__init__()
        self._op, self._then, self._stage = op, then, 0
        self.begin()

    def _next(self):
        self._stage += 1
        if self._stage == 1:
            return self._op
        self._then()
        return None


class _NodeLeaderOp(ChainOp):
    """Hierarchical compressed exchange of one unit: local ranks send their unit to
    the node leader (shared memory), the leader sums them in local-rank order, runs
    the transport with the other leaders and sends the decoded average back."""

    def __init__(self, cx: CompressedExchange, plan: Plan):
        super().__init__()
        self.cx, self.plan = cx, plan
        topo = cx.topo
        self.node, self.L = topo.node_comm, topo.local_size
        self.leader = topo.local_rank == 0
        self.tag = topo.tags(2, self.node)
        self.net_tag = cx.transport.reserve() if self.leader else None
        self.stage = 0
        self.begin()

    def _next(self):
        self.stage += 1
        plan, node, tag = self.plan, self.node, self.tag
        if not self.leader:
            if self.stage == 1:
                return ReqOp([node.Isend(plan.stage, 0, tag)])
            if self.stage == 2:
                return ReqOp([node.Irecv(plan.stage, 0, tag + 1)])
            self.cx.write_back(plan)
            return None
        if self.stage == 1:
            self.parts = [np.empty_like(plan.stage) for _ in range(self.L - 1)]
            return ReqOp([node.Irecv(b, l + 1, tag) for l, b in enumerate(self.parts)])
        if self.stage == 2:
            for b in self.parts:          # in local-rank order: the same on every run
                plan.stage += b
            self.parts = []
            return self.cx.transport.start(plan, self.net_tag)
        if self.stage == 3:
            return ReqOp([node.Isend(plan.stage, l, tag + 1) for l in range(1, self.L)])
        return None
