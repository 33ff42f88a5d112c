# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, embedsignature=True
"""Compiled fused decode + optimizer update (C in csrc/decode_update.c): the quantised
ring's final payload of a chunk decoded block by block into L1 and the SGD update of
the same parameters applied from there.  Same signature and bits as the numpy twin
``dtnn.optim._decode_update.decode_sgd_pieces``."""
import numpy as np

cimport numpy as cnp
from libc.stdint cimport int64_t, uint8_t

cnp.import_array()

# the decode dispatches on the ISA level (this module's own copy of csrc/isa.c)
include "_isa.pxi"

cdef extern from "decode_update.h" nogil:
    void dtnn_decode_sgd_pieces(int kind, const uint8_t *payload, int64_t n, int64_t chunk,
                                double alpha, double levels, int64_t npieces,
                                const int64_t *bounds, const int64_t *offs, float *p,
                                const float *mask, float *buf, float neg_lr, int has_wd,
                                float wd, int has_momentum, float mom, int has_dampening,
                                float one_minus_damp, int nesterov, int first)

# kind -> (C code, elements per code byte): the formats of kernels.decode_pieces
cdef dict _KINDS = {"int8": (0, 1), "terngrad": (1, 4), "sign": (2, 8)}


include "_vec.pxi"


def decode_sgd_pieces(str kind, payload, Py_ssize_t n, Py_ssize_t chunk, double alpha,
                      double levels, bounds, offs, p, mask, buf, double neg_lr, double wd,
                      double mom, double one_minus_damp, bint nesterov, bint first):
    """Decode a whole ``kind`` payload (n elements, scales + codes, as
    ``kernels.decode_pieces``) times ``alpha`` and apply one SGD step
    (``sgd_update``'s scalars) to the parameters it belongs to: piece k, elements
    [bounds[k], bounds[k+1]) of the payload, is p[offs[k] ...] (mask, buf alike).
    The decoded gradient is not stored anywhere."""
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {', '.join(_KINDS)}, got {kind!r}")
    cdef int k = _KINDS[kind][0], per = _KINDS[kind][1]
    if chunk <= 0 or chunk % per:
        raise ValueError(f"chunk must be a positive multiple of {per}, got {chunk}")
    cdef cnp.ndarray pa = _vec(payload, np.uint8, "payload", False)
    cdef Py_ssize_t want = 4 * ((n + chunk - 1) // chunk) + (n + per - 1) // per
    if pa.shape[0] != want:
        raise ValueError(f"payload must have {want} bytes, got {pa.shape[0]}")
    cdef cnp.ndarray ba = _vec(bounds, np.int64, "bounds", False)
    cdef cnp.ndarray oa = _vec(offs, np.int64, "offs", False)
    cdef cnp.ndarray P = _vec(p, np.float32, "p", True)
    cdef cnp.ndarray M = _vec(mask, np.float32, "mask", False)
    cdef bint has_mom = mom != 0
    cdef cnp.ndarray B = None
    cdef float *bp = NULL
    cdef Py_ssize_t np_ = oa.shape[0], size = P.shape[0], i
    cdef const int64_t *bd = <const int64_t *>cnp.PyArray_DATA(ba)
    cdef const int64_t *od = <const int64_t *>cnp.PyArray_DATA(oa)
    if M.shape[0] != size:
        raise ValueError("p and mask differ in size")
    if has_mom:
        B = _vec(buf, np.float32, "buf", True)
        if B.shape[0] != size:
            raise ValueError("p and buf differ in size")
        bp = <float *>cnp.PyArray_DATA(B)
    if ba.shape[0] != np_ + 1 or np_ == 0 or bd[0] != 0 or bd[np_] != n:
        raise ValueError(f"bounds must be np + 1 = {np_ + 1} values from 0 to {n}")
    for i in range(np_):
        if bd[i + 1] < bd[i] or od[i] < 0 or od[i] + bd[i + 1] - bd[i] > size:
            raise ValueError(f"piece {i} ([{bd[i]}, {bd[i + 1]}) at {od[i]}) is outside p")
    if n == 0:
        return
    with nogil:
        dtnn_decode_sgd_pieces(k, <const uint8_t *>cnp.PyArray_DATA(pa), n, chunk, alpha,
                               levels, np_, bd, od, <float *>cnp.PyArray_DATA(P),
                               <const float *>cnp.PyArray_DATA(M), bp, <float>neg_lr,
                               wd != 0, <float>wd, has_mom, <float>mom,
                               one_minus_damp != 1.0, <float>one_minus_damp, nesterov, first)
