"""Scaled sign: 1 bit per element (packed 8 per byte) + one float32 scale per chunk of
``chunk`` elements (default 512; 0 = one scale for the whole bucket), the chunk's mean
|x|, so the decoded vector has the L1 norm of the input chunk by chunk.  Error
feedback is on by default (EF-signSGD, Karimireddy et al. 2019).

Kernel passes with error feedback: one per chunk (``sign_encode``): residual += x, the
chunk's L1 norm, pack the bits and subtract the sent value from the residual, while the
chunk is in cache (add_l1 + chunk_norms + sign_pack for chunks over 8192 elements).

Per-chunk scales keep the update local (an element with a tiny gradient is not moved by
the mean of a whole 400k-element layer).  With error feedback, sign needs a stable
start: in the Fashion-MNIST sweep (benchmarks/results/compress.md) it collapsed without
learning-rate warm-up, and trained within 0.8 pp of fp32 with 0.2 epochs of lr warm-up
or 150 uncompressed steps (``dist.compress_warmup_steps``).
"""
from __future__ import annotations

import numpy as np

from dtnn.compress import kernels as K
from dtnn.compress.base import PackedChunks, register


@register("sign")
class Sign(PackedChunks):
    chunkable = True
    windowed = True
    biased = True

    def _pack(self, c, unit, ef, x=None):
        """The payload of c (+ x first, if given; c -= sent value with ef): one kernel
        pass per chunk (``sign_encode``)."""
        n = unit.size
        chunk, nc = self._chunk(n), self._nchunks(n)
        payload = np.empty(self.payload_size(unit), np.uint8)
        K.sign_encode(c, x, chunk, ef, payload[:4 * nc].view(np.float32), payload[4 * nc:])
        return payload

    def compress_plain(self, x, unit):
        if not x.flags.writeable:   # sign_encode takes c writable (written with ef only)
            x = x.copy()
        return self._pack(x, unit, False)

    def compress(self, x, unit, residual=None):
        if residual is None:
            return self.compress_plain(x, unit)
        return self._pack(residual, unit, True, x)  # residual = x + residual, then pack

    def compress_pieces(self, pieces, unit, residual=None):
        """``compress`` of the concatenated pieces ``(s, e, view)`` (elements [s, e) of the
        unit; they tile it), the same bits, without copying them into one vector: each
        piece goes through ``sign_encode`` into its own slice of the payload.  None when a
        piece does not start on a chunk boundary (a scale would span two pieces)."""
        n = unit.size
        chunk, nc = self._chunk(n), self._nchunks(n)
        if nc < 2 or any(s % chunk for s, _, _ in pieces):
            return None
        payload = np.empty(self.payload_size(unit), np.uint8)
        values, bits = payload[:4 * nc].view(np.float32), payload[4 * nc:]
        for s, e, v in pieces:
            vals, b = values[s // chunk:-(-e // chunk)], bits[s // 8:-(-e // 8)]
            if residual is None:
                K.sign_encode(v if v.flags.writeable else v.copy(), None, chunk, False, vals, b)
            else:
                K.sign_encode(residual[s:e], v, chunk, True, vals, b)
        return payload

    def hop_format(self, unit, ef):
        chunk = self._chunk(unit.size)
        if chunk > 8192:   # the hop kernel keeps one chunk in L1
            return None
        return ("sign", chunk, 1.0, False, "l1", True)

    def decompress_add(self, payload, out, alpha, unit):
        n = unit.size
        nc = self._nchunks(n)
        K.sign_unpack(payload[4 * nc:], n, payload[:4 * nc].view(np.float32), self._chunk(n),
                      alpha, out, True)

    def decompress_set(self, payload, out, alpha, unit):
        n = unit.size
        nc = self._nchunks(n)
        K.sign_unpack(payload[4 * nc:], n, payload[:4 * nc].view(np.float32), self._chunk(n),
                      alpha, out, False)

    def describe(self):
        return f"sign(chunk={self.chunk})"
