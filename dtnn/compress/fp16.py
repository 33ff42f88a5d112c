"""fp16 and bf16: half the bytes of fp32.

fp16 payloads are summable: ``reduce_op=dtnn`` (default) sums them with dtnn's
vectorised float16 op (``dtnn.parallel.fp16_sum``), ``reduce_op=mpi`` with the MPI
library's float16 ``MPI_SUM`` (slow in MPICH); ``prescale=true``
(default) multiplies by 1/N before the conversion so that the sum of N ranks'
values cannot overflow fp16's 65504 where the mean would not.  ``accumulate=fp32``
sends the halves by allgather and sums them in fp32 instead (portable MPI, no fp16
rounding in the reduction).  bf16 always goes by allgather with fp32 accumulation
(MPI has no bf16 type).
"""
from __future__ import annotations

import numpy as np

from dtnn.compress import kernels as K
from dtnn.compress.base import Compressor, Unit, register
from dtnn.errors import ConfigError


@register("fp16")
class FP16(Compressor):
    payload_dtype = np.dtype(np.float16)

    def __init__(self, prescale: bool = True, accumulate: str = "fp16",
                 reduce_op: str = "dtnn"):
        super().__init__()
        if accumulate not in ("fp16", "fp32"):
            raise ConfigError(f"fp16: accumulate must be fp16 or fp32, got {accumulate!r}")
        if reduce_op not in ("dtnn", "mpi"):
            raise ConfigError(f"fp16: reduce_op must be dtnn or mpi, got {reduce_op!r}")
        self.reduce_op = reduce_op
        self.prescale = bool(prescale)
        self.accumulate = accumulate
        self.summable = accumulate == "fp16"
        self.chunkable = not self.summable

    def _pre(self) -> float:
        return 1.0 / self.world_size if (self.prescale and self.summable) else 1.0

    def payload_size(self, unit: Unit) -> int:
        return unit.size if self.summable else 2 * unit.size

    def compress_plain(self, x, unit):
        h = K.f32_to_f16(x, self._pre())
        return h.view(np.float16) if self.summable else h.view(np.uint8)

    def _local(self, payload):
        return payload

    def decompress_add(self, payload, out, alpha, unit):
        K.f16_to_f32(payload.view(np.uint16), alpha / self._pre(), out, True)

    def compress(self, x, unit, residual=None):
        if residual is None:
            return self.compress_plain(x, unit)
        residual += x
        p = self.compress_plain(residual, unit)
        K.f16_to_f32(p.view(np.uint16), -1.0 / self._pre(), residual, True)
        return p

    def describe(self):
        return (f"fp16(prescale={self.prescale}, accumulate={self.accumulate}, "
                f"reduce_op={self.reduce_op})")


@register("bf16")
class BF16(Compressor):
    chunkable = True

    def __init__(self):
        super().__init__()

    def payload_size(self, unit):
        return 2 * unit.size

    def compress_plain(self, x, unit):
        return K.f32_to_bf16(x, 1.0).view(np.uint8)

    def decompress_add(self, payload, out, alpha, unit):
        K.bf16_to_f32(payload.view(np.uint16), alpha, out, True)
