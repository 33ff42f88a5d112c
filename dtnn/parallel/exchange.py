"""The compressed gradient exchange the ``GradientReducer`` delegates to.

Per bucket (a contiguous slice of ``model.flat_grads``):

* tensors with at least ``min_size`` elements form the bucket's *unit*; if they are
  not contiguous in the flat vector (a small bias between two weights) they are
  copied into a staging vector first;
* the smaller tensors (biases, BatchNorm scales) of *all* buckets are copied into one
  fp32 vector and averaged by a single ``Iallreduce`` posted when the last bucket
  closes ("batched together");
* the unit is compressed (with error feedback if on) and its payload posted at once:
  ``Iallreduce(SUM)`` if the compressor's payloads are summable (float16 payloads with
  dtnn's own reduction op, ``dtnn.parallel.fp16_sum``, unless the compressor asks for
  MPI's), else ``Iallgather`` of the fixed-size byte payloads;
* ``finish()`` waits bucket by bucket and decodes into the gradient: the summed
  payload once, or every rank's payload in rank order, each scaled by 1/N.  Every
  rank decodes the same bytes in the same order, so replicas stay bit-identical.
* extra rounds (PowerSGD's Q = M^T P) are pipelined: as bucket k's round-1 sum
  arrives, ``next_round`` runs (orthogonalise P, compute Q) and Q's ``Iallreduce``
  is posted at once, so it travels while bucket k+1 is waited for and computed;
  the buckets with a pending round are decoded in a second pass, in bucket order.
  Each bucket runs the same arithmetic as with a blocking ``Allreduce`` per round,
  and every rank posts the collectives in the same (bucket) order.
  ``DTNN_CX_ROUNDS=blocking`` (or ``rounds="blocking"``) restores one blocking
  ``Allreduce`` per extra round (the reference the tests compare against).
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from dtnn.compress.base import Compressor, Unit
from dtnn.parallel.fp16_sum import iallreduce_half
from dtnn.compress.memory import ErrorFeedback

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
class _Plan:
    unit: Optional[Unit]
    ranges: List[Tuple[int, int]]        # big tensors' ranges in flat_grads
    stage: Optional[np.ndarray] = None   # the unit's vector (a view if contiguous)
    staged: bool = False                 # stage is a copy that must be written back
    recv: Optional[np.ndarray] = None    # allgather receive buffer
    payload: Optional[np.ndarray] = None
    request: Any = None


class CompressedExchange:
    def __init__(self, comm, model, buckets, compressor: Compressor, error_feedback: bool,
                 min_size: int, seed: int = 0, rounds: Optional[str] = None):
        from mpi4py import MPI
        rounds = (rounds or os.environ.get("DTNN_CX_ROUNDS", "") or "pipelined").lower()
        if rounds not in ROUNDS:
            raise ValueError(f"rounds must be one of {', '.join(ROUNDS)}, got {rounds!r}")
        self.rounds = rounds
        self.MPI = MPI
        self.comm = comm
        self.size = comm.Get_size()
        self.rank = comm.Get_rank()
        self.compressor = compressor
        compressor.setup(self.size, self.rank, seed)
        self._half_sum = (np.dtype(getattr(compressor, "payload_dtype", np.uint8)) == np.float16
                          and getattr(compressor, "reduce_op", "dtnn") == "dtnn")
        self.ef = ErrorFeedback() if error_feedback else None
        self.grads = model.flat_grads
        self.alpha = 1.0 / self.size
        self.plans: List[_Plan] = []
        small: List[Tuple[int, int]] = []
        for k, (a, b, _) in enumerate(buckets):
            slots = sorted((s for s in model.slots if a <= s.offset < b), key=lambda s: s.offset)
            big = [s for s in slots if s.size >= max(1, min_size)]
            small += [(s.offset, s.offset + s.size) for s in slots if s.size < max(1, min_size)]
            if not big:
                self.plans.append(_Plan(None, []))
                continue
            tensors, off = [], 0
            for s in big:
                tensors.append((off, tuple(s.shape)))
                off += s.size
            ranges = _merge([(s.offset, s.offset + s.size) for s in big])
            plan = _Plan(Unit(k, off, tensors), ranges)
            if len(ranges) == 1:
                plan.stage = self.grads[ranges[0][0]:ranges[0][1]]
            else:
                plan.stage, plan.staged = np.empty(off, np.float32), True
            if not compressor.summable:
                plan.recv = np.empty(self.size * compressor.payload_size(plan.unit), np.uint8)
            self.plans.append(plan)
        self.small_ranges = _merge(small)
        self.small_buf = np.empty(sum(b - a for a, b in self.small_ranges), np.float32)
        self._small_req = None
        self._posted = 0
        self.step = 0
        #: per step: seconds compressing / decoding, bytes this rank sent
        self.codec_seconds = 0.0
        self.sent_bytes = 0

    @property
    def compressed_elements(self) -> int:
        return sum(p.unit.size for p in self.plans if p.unit is not None)

    def begin(self, step: int) -> None:
        self.step = step
        self._posted = 0
        self.codec_seconds = 0.0
        self.sent_bytes = 0

    # --- post one bucket ----------------------------------------------------------------
    def post(self, k: int) -> List[Any]:
        """Compress bucket ``k`` and start its collective; returns the new requests."""
        MPI = self.MPI
        plan = self.plans[k]
        reqs: List[Any] = []
        if plan.unit is not None:
            t = time.perf_counter()
            if plan.staged:
                o = 0
                for a, b in plan.ranges:
                    plan.stage[o:o + b - a] = self.grads[a:b]
                    o += b - a
            unit = plan.unit
            unit.step = self.step
            residual = self.ef.residual(unit.index, unit.size) if self.ef is not None else None
            payload = self.compressor.compress(plan.stage, unit, residual)
            self.codec_seconds += time.perf_counter() - t
            plan.payload = payload
            self.sent_bytes += payload.nbytes
            if self.compressor.summable and self._half_sum:
                plan.request = iallreduce_half(self.comm, MPI, payload)
            elif self.compressor.summable:
                plan.request = self.comm.Iallreduce(MPI.IN_PLACE, payload, op=MPI.SUM)
            else:
                plan.request = self.comm.Iallgather(payload, plan.recv)
            reqs.append(plan.request)
        self._posted += 1
        if self._posted == len(self.plans) and self.small_buf.size:
            o = 0
            for a, b in self.small_ranges:
                self.small_buf[o:o + b - a] = self.grads[a:b]
                o += b - a
            self._small_req = self.comm.Iallreduce(MPI.IN_PLACE, self.small_buf, op=MPI.SUM)
            self.sent_bytes += self.small_buf.nbytes
            reqs.append(self._small_req)
        return reqs

    # --- wait and decode ----------------------------------------------------------------
    def finish(self) -> float:
        """Wait for every bucket and decode the averages into ``flat_grads``; returns the
        seconds spent decoding (the rest of the time was waiting)."""
        comp = self.compressor
        pipelined = self.rounds == "pipelined"
        decode = 0.0
        pending: List[_Plan] = []  # buckets whose next round is in flight
        for plan in self.plans:
            if plan.unit is None:
                continue
            plan.request.Wait()
            t = time.perf_counter()
            if comp.summable and pipelined:
                if self._next_round(plan):
                    pending.append(plan)
                    decode += time.perf_counter() - t
                    continue
            elif comp.summable:
                while True:  # reference: one blocking Allreduce per extra round
                    nxt = comp.next_round(plan.payload, plan.unit)
                    if nxt is None:
                        break
                    decode += time.perf_counter() - t
                    self.comm.Allreduce(self.MPI.IN_PLACE, nxt, op=self.MPI.SUM)
                    self.sent_bytes += nxt.nbytes
                    t = time.perf_counter()
                    plan.payload = nxt
            self._decode(plan)
            decode += time.perf_counter() - t
        while pending:  # later rounds, in bucket order (the order they were posted)
            still: List[_Plan] = []
            for plan in pending:
                plan.request.Wait()
                t = time.perf_counter()
                if self._next_round(plan):
                    still.append(plan)
                else:
                    self._decode(plan)
                decode += time.perf_counter() - t
            pending = still
        if self._small_req is not None:
            self._small_req.Wait()
            self._small_req = None
            self.small_buf *= np.float32(self.alpha)
            o = 0
            for a, b in self.small_ranges:
                self.grads[a:b] = self.small_buf[o:o + b - a]
                o += b - a
        self.codec_seconds += decode
        return decode

    def _next_round(self, plan: _Plan) -> bool:
        """Run the compressor's next round on the summed payload and post its
        ``Iallreduce``; False if there is none (the payload is final)."""
        nxt = self.compressor.next_round(plan.payload, plan.unit)
        if nxt is None:
            return False
        plan.payload = nxt
        plan.request = self.comm.Iallreduce(self.MPI.IN_PLACE, nxt, op=self.MPI.SUM)
        self.sent_bytes += nxt.nbytes
        return True

    def _decode(self, plan: _Plan) -> None:
        """Decode the bucket's final payload (summed, or every rank's) into the gradient."""
        comp, unit = self.compressor, plan.unit
        plan.stage.fill(0.0)
        if comp.summable:
            comp.decompress_add(plan.payload, plan.stage, self.alpha, unit)
        else:
            m = plan.recv.size // self.size
            for r in range(self.size):
                comp.decompress_add(plan.recv[r * m:(r + 1) * m], plan.stage, self.alpha, unit)
        if plan.staged:
            o = 0
            for a, b in plan.ranges:
                self.grads[a:b] = plan.stage[o:o + b - a]
                o += b - a
        plan.payload = plan.request = None

    # --- state ----------------------------------------------------------------------------
    def local_state(self) -> Dict[str, Any]:
        return {"ef": self.ef.state_dict() if self.ef is not None else {},
                "compressor": self.compressor.state_dict()}

    def load_local_state(self, state: Dict[str, Any]) -> None:
        if self.ef is not None:
            self.ef.load_state_dict(state.get("ef", {}) or {})
        self.compressor.load_state_dict(state.get("compressor", {}) or {})
