"""Scaled sign: 1 bit per element (packed 8 per byte) + one float32 scale per chunk of
``chunk`` elements (default 512; 0 = one scale for the whole bucket), the chunk's mean
|x|, so the decoded vector has the L1 norm of the input chunk by chunk.  Error
feedback is on by default (EF-signSGD, Karimireddy et al. 2019).

Kernel passes with error feedback: (1) residual += x (fused with a sum), (2) per-chunk
L1 norms, (3) pack the bits and subtract the sent value from the residual.

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

    def _pack(self, c, unit, ef):
        n = unit.size
        chunk, nc = self._chunk(n), self._nchunks(n)
        payload = np.empty(self.payload_size(unit), np.uint8)
        values = payload[:4 * nc].view(np.float32)
        sums = K.chunk_norms(c, chunk, "l1")
        lens = np.full(nc, chunk, np.float32)
        lens[-1] = n - chunk * (nc - 1)
        np.divide(sums, lens, out=values)
        K.sign_pack(c, values, chunk, ef, payload[4 * nc:])
        return payload

    def compress_plain(self, x, unit):
        return self._pack(x, unit, False)

    def compress(self, x, unit, residual=None):
        if residual is None:
            return self._pack(x, unit, False)
        K.add_l1(x, residual)  # residual = x + residual
        return self._pack(residual, unit, True)

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
