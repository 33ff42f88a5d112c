"""Quantisers sent by allgather: int8 (per-bucket scale), QSGD, TernGrad.

int8     q = round(x * 127 / max|x|), stochastic rounding by default (unbiased);
         payload: float32 scale + n int8.
qsgd     QSGD (Alistarh et al. 2017) with s = 2^(bits-1) - 1 levels per sign and an
         L2 norm per chunk of ``chunk`` elements (default 512): q = sign(x) *
         floor(|x| s / norm + u), unbiased; variance <= min(d/s^2, sqrt(d)/s) ||x||^2
         per chunk of d elements.  Payload: float32 norms + the levels, ``bits`` bits
         per element: one int8 each for bits=8, below that bit-packed
         (``dtnn.compress.bitpack``: B-bit two's complement, 8 elements in B bytes,
         ceil(n*B/8) bytes), so bits=4 sends ~8x and bits=2 ~16x fewer bytes than
         fp32, less the norms (4 bytes per chunk).  Decoding unpacks and dequantises
         in one pass, with the same float32 rounding as the int8 path.
terngrad TernGrad (Wen et al. 2017): t = sign(x) * Bernoulli(|x| / max|x|), times
         max|x|; unbiased.  The max is taken per chunk of ``chunk`` elements (default
         512; 0 = one per bucket, the paper's per-layer scale, whose variance cost 3.4
         pp of accuracy in our sweep).  Payload: float32 scales + 2 bits per element.
Stochastic rounding draws from the counter-based RNG keyed by (seed, rank, step,
unit): reproducible, independent per rank.
"""
from __future__ import annotations

import numpy as np

from dtnn.compress import bitpack as BP
from dtnn.compress import kernels as K
from dtnn.compress.base import Compressor, PackedChunks, Unit, register
from dtnn.errors import ConfigError


class _Int8Family(Compressor):
    chunkable = True
    levels = 127.0
    chunk = 0  # 0 = one chunk per unit
    kind = "max"
    stochastic = True

    def _chunk(self, unit: Unit) -> int:
        return self.chunk if self.chunk else max(1, unit.size)

    def _nchunks(self, unit: Unit) -> int:
        c = self._chunk(unit)
        return (unit.size + c - 1) // c

    def payload_size(self, unit):
        return 4 * self._nchunks(unit) + unit.size

    def compress_plain(self, x, unit):
        chunk = self._chunk(unit)
        nc = self._nchunks(unit)
        payload = np.empty(4 * nc + unit.size, np.uint8)
        scales = payload[:4 * nc].view(np.float32)
        scales[:] = K.chunk_norms(x, chunk, self.kind)
        K.quantize_i8(x, chunk, scales, self.levels, self.key(unit), self.stochastic,
                      payload[4 * nc:].view(np.int8))
        return payload

    def decompress_add(self, payload, out, alpha, unit):
        nc = self._nchunks(unit)
        K.dequantize_i8(payload[4 * nc:].view(np.int8), self._chunk(unit),
                        payload[:4 * nc].view(np.float32), self.levels, alpha, out, True)

    def hop_format(self, unit, ef):
        if getattr(self, "bits", 8) != 8:
            return None
        return ("int8", self._chunk(unit), float(self.levels), self.stochastic,
                "max" if self.kind == "max" else "l2", not ef)

    @property
    def windowed(self):
        return getattr(self, "bits", 8) == 8

    def decompress_window(self, payload, unit, s0, e0, out, alpha, base=None,
                          accumulate=False):
        if not self.windowed:
            return super().decompress_window(payload, unit, s0, e0, out, alpha, base,
                                             accumulate)
        nc = self._nchunks(unit)
        K.decode_window("int8", payload[4 * nc:].view(np.int8), unit.size,
                        payload[:4 * nc].view(np.float32), self._chunk(unit), alpha,
                        self.levels, s0, e0, out, base, accumulate)

    def decompress_set(self, payload, out, alpha, unit):
        if getattr(self, "bits", 8) != 8:
            return super().decompress_set(payload, out, alpha, unit)
        nc = self._nchunks(unit)
        K.dequantize_i8(payload[4 * nc:].view(np.int8), self._chunk(unit),
                        payload[:4 * nc].view(np.float32), self.levels, alpha, out, False)


@register("int8")
class Int8(_Int8Family):
    def __init__(self, stochastic: bool = True):
        super().__init__()
        self.stochastic = bool(stochastic)

    def describe(self):
        return f"int8(stochastic={self.stochastic})"


@register("qsgd")
class QSGD(_Int8Family):
    kind = "l2"

    def __init__(self, bits: int = 8, chunk: int = 512):
        super().__init__()
        if not 2 <= int(bits) <= 8:
            raise ConfigError(f"qsgd: bits must be in 2..8, got {bits}")
        if int(chunk) < 0:
            raise ConfigError(f"qsgd: chunk must be >= 0, got {chunk}")
        self.bits = int(bits)
        self.levels = float(2 ** (self.bits - 1) - 1)
        self.chunk = int(chunk)

    def payload_size(self, unit):
        if self.bits == 8:
            return super().payload_size(unit)
        return 4 * self._nchunks(unit) + BP.packed_size(unit.size, self.bits)

    def compress_plain(self, x, unit):
        if self.bits == 8:
            return super().compress_plain(x, unit)
        chunk = self._chunk(unit)
        nc = self._nchunks(unit)
        payload = np.empty(self.payload_size(unit), np.uint8)
        scales = payload[:4 * nc].view(np.float32)
        scales[:] = K.chunk_norms(x, chunk, self.kind)
        q = K.quantize_i8(x, chunk, scales, self.levels, self.key(unit), self.stochastic)
        BP.pack_bits(q, self.bits, out=payload[4 * nc:])
        return payload

    def decompress_add(self, payload, out, alpha, unit):
        if self.bits == 8:
            return super().decompress_add(payload, out, alpha, unit)
        nc = self._nchunks(unit)
        BP.dequantize_bits(payload[4 * nc:], unit.size, self.bits, self._chunk(unit),
                           payload[:4 * nc].view(np.float32), self.levels, alpha, out, True)

    def describe(self):
        return f"qsgd(bits={self.bits}, levels={int(self.levels)}, chunk={self.chunk})"


@register("terngrad")
class TernGrad(PackedChunks):
    chunkable = True
    windowed = True
    per_byte = 4

    def compress_plain(self, x, unit):
        n, chunk, nc = unit.size, self._chunk(unit.size), self._nchunks(unit.size)
        payload = np.empty(self.payload_size(unit), np.uint8)
        scales = payload[:4 * nc].view(np.float32)
        scales[:] = K.chunk_norms(x, chunk, "max")
        K.terngrad_quantize(x, scales, chunk, self.key(unit), payload[4 * nc:])
        return payload

    def decompress_add(self, payload, out, alpha, unit):
        n, nc = unit.size, self._nchunks(unit.size)
        K.terngrad_dequantize(payload[4 * nc:], n, payload[:4 * nc].view(np.float32),
                              self._chunk(n), alpha, out, True)

    def hop_format(self, unit, ef):
        return ("terngrad", self._chunk(unit.size), 1.0, True, "max", not ef)

    def decompress_set(self, payload, out, alpha, unit):
        n, nc = unit.size, self._nchunks(unit.size)
        K.terngrad_dequantize(payload[4 * nc:], n, payload[:4 * nc].view(np.float32),
                              self._chunk(n), alpha, out, False)

    def describe(self):
        return f"terngrad(chunk={self.chunk})"
