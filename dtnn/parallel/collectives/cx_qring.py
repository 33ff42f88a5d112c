"""``qring`` transport: quantised reduce-scatter + allgather (int8, QSGD, TernGrad,
sign, bf16: any compressor whose payload can encode an arbitrary slice, marked
``chunkable``).

The unit is cut into N chunks (aligned to the compressor's own chunk).  Reduce-
scatter around the ring: in step s rank r sends chunk (r - s) compressed; the next
rank decodes it, adds its own chunk in fp32 and compresses the partial sum again for
the next hop.  After N-1 steps rank r holds the fp32 sum of chunk r + 1; it
compresses it once more and that payload goes round the ring unchanged (allgather),
so every rank decodes the same bytes: replicas stay bit-identical.  Each rank sends
2 (N-1)/N of one payload per step instead of receiving N-1 payloads (allgather).

Error: every rank compresses every element exactly once per step (N-1 chunks as hops
of the reduce-scatter, its own chunk for the allgather).
* stochastic rounding (int8, QSGD, TernGrad): each compression is unbiased given its
  input, so the sum stays unbiased (E[Q(a + Q(b))] = a + b); each has its own RNG
  stream (seed, rank, step, unit, chunk); the variance adds up over the hops;
* error feedback (sign, or ``ef=true``): the residual of the element a rank
  compressed is kept in that rank's memory (the unit's usual residual vector), and
  the sum over ranks of the residual changes is exactly what the hops dropped, so the
  usual error-feedback argument holds for the global sum.
"""
from __future__ import annotations

from typing import List

import numpy as np

from dtnn.compress import kernels as K
from dtnn.parallel.collectives import base as B
from dtnn.parallel.collectives.transport import Transport
from dtnn.parallel.held import Held, HeldChunk


def _layout_key(t: "QRingTransport", plan) -> tuple:
    return (id(t), plan.direct, plan.unit.size, id(t.cx.grads), id(plan.stage))


def _flat_pieces(grads: np.ndarray, pieces):
    """Per chunk, its pieces as (bounds, flat offsets) int64 arrays for
    ``dist.fuse_update`` (``dtnn.parallel.held``); None unless every piece is a view
    of the flat gradient (a staged copy cannot be updated from)."""
    g0, out = grads.__array_interface__["data"][0], []
    for chunk in pieces:
        bounds, offs = [0], []
        for s, e, v in chunk:
            at = v.__array_interface__["data"][0] - g0
            if (v.dtype != np.float32 or not v.flags.c_contiguous or at < 0 or at % 4
                    or at // 4 + v.size > grads.size):
                return None
            bounds.append(e)
            offs.append(at // 4)
        out.append((np.array(bounds, np.int64), np.array(offs, np.int64)))
    return out


class _Layout:
    """What a bucket's ring needs that does not change from step to step: the chunk
    bounds, the sub-units (their ``step`` is set per op), payload sizes, hop formats,
    each chunk's pieces (views of the flat gradient or the stage) and the buffers: one
    receive buffer, the scratch vector, and one payload buffer per chunk for the
    final payloads (what arrives in the allgather, and the ones this rank encodes).
    Built once per (bucket, transport, direct) and reused, so an op allocates nothing
    and recomputes nothing per step; ``busy`` while an op uses it (a second op of the
    same bucket in flight builds its own)."""

    def __init__(self, t: "QRingTransport", plan, direct: bool):
        p, unit, comp, cx = t.size, plan.unit, t.compressor, t.cx
        self.key = _layout_key(t, plan)
        self.bounds = B.chunk_bounds(unit.size, p, t.align)
        self.subs = [t.sub_unit(unit, c, self.bounds[c], self.bounds[c + 1]) for c in range(p)]
        self.msize = [comp.payload_size(u) if u.size else 0 for u in self.subs]
        self.win = comp.windowed and not cx._stage_always
        has_res = cx.ef is not None
        self.fmt = [comp.hop_format(u, has_res) if self.win and u.size else None
                    for u in self.subs]
        self.fused = [f is not None and f[5] for f in self.fmt]
        self.pieces = []
        for c in range(p):
            lo, hi = self.bounds[c], self.bounds[c + 1]
            self.pieces.append([(s - lo, e - lo, v) for s, e, v in
                                plan.pieces(cx.grads, lo, hi, direct)])
        self.flat = _flat_pieces(cx.grads, self.pieces) if self.win else None
        self.acc = np.empty(max(u.size for u in self.subs), np.float32)
        self.rbuf = np.empty(max(self.msize), np.uint8)
        self.pay = [np.empty(m, np.uint8) for m in self.msize]
        self._res = self._res_parts = None
        self.busy = False

    def residual_parts(self, res):
        """The residual's slice per chunk (None without error feedback), cut again only
        when the residual vector is a new one (a checkpoint loaded)."""
        if res is None:
            return [None] * len(self.subs)
        if res is not self._res:
            self._res = res
            self._res_parts = [res[self.bounds[c]:self.bounds[c + 1]]
                               for c in range(len(self.subs))]
        return self._res_parts


class _QRingOp(B.Op):
    name = "qring"

    def __init__(self, t: "QRingTransport", plan, tag: int):
        super().__init__()
        self.t, self.plan, self.tag = t, plan, tag
        p, r = t.size, t.rank
        self.p, self.r = p, r
        self.left, self.right = (r - 1) % p, (r + 1) % p
        self.L = L = t.layout(plan)
        for u in L.subs:
            u.step = plan.unit.step
        self.bounds, self.subs, self.msize = L.bounds, L.subs, L.msize
        self.acc, self.rbuf = L.acc, L.rbuf
        self.res = t.cx.residual(plan.unit)
        self.rparts = L.residual_parts(self.res)
        self.win = L.win
        # windowed (int8, QSGD-8, TernGrad, sign): a hop decodes the partial sum and
        # adds our chunk in one pass (out = x + v), read from the flat gradient's
        # ranges when the unit is not staged (plan.direct), and the final payloads are
        # decoded straight into them; DTNN_CX_STAGE=always keeps copy + add, the
        # reference the tests compare with
        # the fused kernels (int8, QSGD-8, TernGrad, sign): a hop is one C call that
        # decodes the partial sum, adds our chunk from its pieces and re-encodes it
        # chunk by chunk in L1 (``kernels.qring_hop``); the final payloads are decoded
        # into the pieces in one call each (``kernels.decode_pieces``)
        self.fmt = L.fmt
        self.final: List[np.ndarray] = [None] * p    # the allgathered payloads
        self.step = 0
        self.sendbuf = self._enc_own(r)              # step 0 sends our own chunk r
        self._post()

    def _x(self, c: int) -> np.ndarray:
        c %= self.p
        return self.plan.stage[self.bounds[c]:self.bounds[c + 1]]

    def _pieces(self, c: int):
        """Chunk c's pieces ``(s, e, view)``, s and e relative to the chunk."""
        return self.L.pieces[c]

    def _own(self, c: int) -> np.ndarray:
        """Our chunk c as one vector: a view of the stage, or gathered from the flat
        ranges into the scratch vector (only this chunk is copied, not the unit)."""
        if not self.plan.direct:
            return self._x(c)
        acc = self.acc[:self.subs[c].size]
        for s, e, v in self._pieces(c):
            acc[s:e] = v
        return acc

    def _enc_own(self, c: int) -> np.ndarray:
        """Our chunk c's payload.  From the flat gradient's ranges (plan.direct) the
        compressors that can (``compress_pieces``: sign) encode the pieces in place;
        the others get the chunk gathered into the scratch vector first."""
        comp, u = self.t.compressor, self.subs[c]
        if self.L.fused[c]:
            return self._hop(c, None)
        if self.plan.direct and u.size and hasattr(comp, "compress_pieces"):
            res = self.rparts[c]
            payload = self.t.cx.timed(comp.compress_pieces, self._pieces(c), u, res)
            if payload is not None:
                self.t.cx.sent_bytes += payload.nbytes
                return payload.view(np.uint8)
        return self._enc(c, self._own(c))

    def _hop(self, c: int, pin) -> np.ndarray:
        """The payload of decoded(pin) + our chunk c (pin None: ours alone) in one call."""
        kind, chunk, levels, stochastic, norm, _ = self.fmt[c]
        u, cx = self.subs[c], self.t.cx
        payload = cx.timed(K.qring_hop, kind, pin, u.size, chunk, levels, stochastic, norm,
                           self.t.compressor.key(u), self.L.pieces[c], self.rparts[c],
                           self.L.pay[c])
        cx.sent_bytes += payload.nbytes
        return payload

    def _enc(self, c: int, v: np.ndarray) -> np.ndarray:
        u = self.subs[c]
        if u.size == 0:
            return np.empty(0, np.uint8)
        payload = self.t.cx.timed(self.t.compressor.compress, v, u, self.rparts[c])
        self.t.cx.sent_bytes += payload.nbytes
        return payload.view(np.uint8)

    def _chunks(self):
        """(chunk sent, chunk received) in the current step."""
        s, p, r = self.step, self.p, self.r
        if s < p - 1:
            return (r - s) % p, (r - s - 1) % p
        k = s - (p - 1)
        return (r + 1 - k) % p, (r - k) % p

    def _post(self) -> None:
        send_c, recv_c = self._chunks()
        rb = self.rbuf[:self.msize[recv_c]]
        if self.step >= self.p - 1:
            rb = self.final[recv_c] = self.L.pay[recv_c]
        self.reqs = [self.t.comm.Irecv(rb, self.left, self.tag),
                     self.t.comm.Isend(self.sendbuf, self.right, self.tag)]
        self.sent += self.sendbuf.nbytes
        self.received += rb.nbytes

    def _advance(self) -> bool:
        p, cx, comp = self.p, self.t.cx, self.t.compressor
        send_c, recv_c = self._chunks()
        u = self.subs[recv_c]
        if self.step < p - 1:     # decode the partial sum, add ours, re-compress
            payload = self.rbuf[:self.msize[recv_c]]
            if self.L.fused[recv_c]:
                enc = self._hop(recv_c, payload)
            else:
                acc = self.acc[:u.size]
                if not self.win:
                    np.copyto(acc, self._x(recv_c))
                    if u.size:
                        cx.timed(comp.decompress_add, payload, acc, 1.0, u)
                elif u.size:
                    cx.timed(self._decode_add, payload, u, acc, recv_c)
                enc = self._enc(recv_c, acc)
            if self.step == p - 2:   # the full sum of our chunk: its final payload
                self.final[recv_c] = enc
            self.sendbuf = enc
        else:                      # allgather: forward what arrived
            self.sendbuf = self.final[recv_c]
        self.step += 1
        if self.step == 2 * (p - 1):
            cx.timed(self._decode)
            return True
        self._post()
        return False

    def _decode_add(self, payload, u, acc, c) -> None:
        for s, e, v in self._pieces(c):
            self.t.compressor.decompress_window(payload, u, s, e, acc[s:e], 1.0, base=v)

    def _hold(self) -> bool:
        """dist.fuse_update: leave the averaged gradient as the final payloads, for the
        optimizer's update to decode (``dtnn.parallel.held``), when every chunk has a
        windowed format and its pieces are the flat gradient's; the layout (whose
        buffers hold the payloads) stays busy until they are consumed."""
        L, cx = self.L, self.t.cx
        if not cx.fuse_update or L.flat is None or not self.win:
            return False
        if any(f is None and u.size for f, u in zip(self.fmt, self.subs)):
            return False
        chunks = []
        for c in range(self.p):
            f, u = self.fmt[c], self.subs[c]
            if u.size:
                bounds, offs = L.flat[c]
                chunks.append(HeldChunk(f[0], self.final[c], u.size, f[1], f[2], bounds, offs))

        def release() -> None:
            L.busy = False
        cx.held.hold(Held(self.plan.ranges, chunks, cx.alpha, release))
        self.final = []
        return True

    def _decode(self) -> None:
        plan, cx, comp = self.plan, self.t.cx, self.t.compressor
        if self._hold():
            return
        for c in range(self.p):
            u = self.subs[c]
            if not self.win:
                out = self._x(c)
                if u.size:
                    comp.decompress_set(self.final[c], out, cx.alpha, u)
                else:
                    out.fill(0.0)
                continue
            f = self.fmt[c]
            if f is not None:
                K.decode_pieces(f[0], self.final[c], u.size, f[1], cx.alpha, f[2],
                                self._pieces(c))
                continue
            for s, e, v in self._pieces(c):
                comp.decompress_window(self.final[c], u, s, e, v, cx.alpha)
        cx.write_back(plan)
        self.final = []
        self.L.busy = False


@B.TRANSPORTS.register("qring")
class QRingTransport(Transport):
    name = "qring"

    def __init__(self, cx, net, algorithm: str = "ring"):
        super().__init__(cx, net, algorithm)
        comp = self.compressor
        if comp.summable or not getattr(comp, "chunkable", False):
            from dtnn.errors import ConfigError
            raise ConfigError(f"dist.collective=qring: {comp.name} payloads cannot be "
                              "re-encoded chunk by chunk (use allgather)")
        chunk = int(getattr(comp, "chunk", 0) or 0)
        self.align = max(8, -(-chunk // 8) * 8)

    def layout(self, plan) -> _Layout:
        """The bucket's cached ``_Layout`` (built on first use, again if the unit, the
        flat vector or ``plan.direct`` changed), marked busy for the op."""
        cached = L = plan.cache.get("qring")
        if L is None or L.key != _layout_key(self, plan) or L.busy:
            L = _Layout(self, plan, plan.direct)
            if cached is None or not cached.busy:
                plan.cache["qring"] = L
        L.busy = True
        return L

    def start(self, plan, tag=None):
        if self.size == 1:
            from dtnn.parallel.collectives.cx_allgather import AllgatherTransport
            return AllgatherTransport.start(self, plan, tag)
        return _QRingOp(self, plan, self.reserve() if tag is None else tag)
