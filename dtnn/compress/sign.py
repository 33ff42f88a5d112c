"""Scaled sign (1 bit per element + one float32 scale = mean |x|), bits packed 8 per
byte; error feedback on by default (EF-signSGD, Karimireddy et al. 2019).  With
error feedback the kernel path is fused: pass 1 adds the gradient into the residual
and sums magnitudes, pass 2 packs the bits and subtracts the sent value."""
from __future__ import annotations

import numpy as np

from dtnn.compress import kernels as K
from dtnn.compress.base import Compressor, register


@register("sign")
class Sign(Compressor):
    biased = True

    def __init__(self):
        super().__init__()

    def payload_size(self, unit):
        return 4 + (unit.size + 7) // 8

    def _pack(self, c, unit, ef):
        payload = np.empty(self.payload_size(unit), np.uint8)
        l1 = K.add_l1(None, c)
        scale = np.float32(l1 / max(1, c.size))
        payload[:4].view(np.float32)[0] = scale
        K.sign_pack(c, float(scale), ef, payload[4:])
        return payload

    def compress_plain(self, x, unit):
        return self._pack(x, unit, False)

    def compress(self, x, unit, residual=None):
        if residual is None:
            return self._pack(x, unit, False)
        payload = np.empty(self.payload_size(unit), np.uint8)
        l1 = K.add_l1(x, residual)  # residual = x + residual, and its L1 norm
        scale = np.float32(l1 / max(1, x.size))
        payload[:4].view(np.float32)[0] = scale
        K.sign_pack(residual, float(scale), True, payload[4:])
        return payload

    def decompress_add(self, payload, out, alpha, unit):
        scale = float(payload[:4].view(np.float32)[0])
        K.sign_unpack(payload[4:], unit.size, np.float32(scale * alpha), out, True)
