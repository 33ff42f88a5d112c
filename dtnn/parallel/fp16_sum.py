"""An MPI reduction op summing IEEE half-precision buffers with the compiled kernels.

MPICH's built-in ``MPI_SUM`` on float16 converts element by element in a generic
loop: on this machine an fp16 allreduce on shared memory took several times longer
than the fp32 allreduce of twice the bytes, so fp16 compression made training slower
(``benchmarks/results/scaling.md``).  This op does each pairwise reduction as
f16 -> f32, add, f32 -> f16 with the vectorised conversion kernels of
``dtnn.compress.kernels``: the same arithmetic (one fp32 add, one rounding to fp16 per
pair), so results do not depend on which op is used beyond MPI's own ordering.  The
payload travels as ``MPI_UNSIGNED_SHORT``, so it also works with MPIs that have no
float16 type.  The op is commutative; MPI calls it on chunks of the message.
"""
from __future__ import annotations

import numpy as np

from dtnn.compress import kernels as K

_OP = None
_SCRATCH = np.empty(0, np.float32)


def _scratch(n: int) -> np.ndarray:
    global _SCRATCH
    if _SCRATCH.size < n:
        _SCRATCH = np.empty(max(n, 2 * _SCRATCH.size), np.float32)
    return _SCRATCH[:n]


def half_sum(inbuf, inoutbuf, datatype=None) -> None:
    """``inoutbuf += inbuf`` for float16 data given as raw buffers (MPI's signature)."""
    a = np.frombuffer(inbuf, np.uint16)
    b = np.frombuffer(inoutbuf, np.uint16)
    tmp = _scratch(a.size)
    K.f16_to_f32(b, 1.0, tmp, False)
    K.f16_to_f32(a, 1.0, tmp, True)
    K.f32_to_f16(tmp, 1.0, b)


def fp16_sum_op(MPI):
    """The (process-wide) ``MPI.Op`` for :func:`half_sum`."""
    global _OP
    if _OP is None:
        _OP = MPI.Op.Create(half_sum, commute=True)
    return _OP


def iallreduce_half(comm, MPI, payload: np.ndarray):
    """Start an in-place sum of a float16 array over ``comm``."""
    return comm.Iallreduce(MPI.IN_PLACE, [payload.view(np.uint16), MPI.UNSIGNED_SHORT],
                           op=fp16_sum_op(MPI))


def half_add(own: np.ndarray, received: np.ndarray) -> None:
    """``own += received`` for float16 arrays (or their uint16 views), in place: the
    reduction step of dtnn's own collectives (the same arithmetic as the MPI op)."""
    half_sum(received, own)
