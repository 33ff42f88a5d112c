# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, embedsignature=True
"""Compiled bit-packing kernels (C in csrc/bitpack.c).

Same signatures and results (byte for byte) as the numpy twins in
``dtnn.compress.bitpack_twins``, which document the layout.  The wrappers check
dtypes, contiguity and sizes, then call C without the GIL.
"""
import numpy as np

cimport numpy as cnp
from libc.stdint cimport int8_t, int64_t, uint8_t

cnp.import_array()

cdef extern from "bitpack.h" nogil:
    int dtnn_bp_openmp_enabled()
    int64_t dtnn_bp_packed_size(int64_t n, int bits)
    void dtnn_bp_pack(const int8_t *q, uint8_t *packed, int64_t n, int bits)
    void dtnn_bp_unpack(const uint8_t *packed, int8_t *q, int64_t n, int bits)
    void dtnn_bp_dequantize(const uint8_t *packed, float *out, int64_t n, int bits,
                            int64_t chunk, const float *scales, double alpha, double levels,
                            int accumulate)


def openmp_enabled():
    return bool(dtnn_bp_openmp_enabled())


cdef int _bits(object bits) except -1:
    cdef long b = int(bits)
    if b < 1 or b > 8:
        raise ValueError(f"bits must be in 1..8, got {bits}")
    return <int>b


cdef cnp.ndarray _vec(object a, object dtype, str name, bint writable=False):
    if not isinstance(a, np.ndarray):
        raise ValueError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype != dtype:
        raise ValueError(f"{name} must be {np.dtype(dtype)}, got {a.dtype}")
    if a.ndim != 1 or not a.flags.c_contiguous:
        raise ValueError(f"{name} must be a contiguous 1-D array, got shape {a.shape}")
    if writable and not a.flags.writeable:
        raise ValueError(f"{name} must be writable")
    return a


cdef cnp.ndarray _out(object out, Py_ssize_t n, object dtype, str name):
    if out is None:
        return np.empty(n, dtype)
    cdef cnp.ndarray o = _vec(out, dtype, name, True)
    if o.shape[0] != n:
        raise ValueError(f"{name} must have {n} elements, got {o.shape[0]}")
    return o


cdef cnp.ndarray _packed(object packed, Py_ssize_t n, int b):
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    cdef cnp.ndarray pa = _vec(packed, np.uint8, "packed")
    cdef Py_ssize_t need = dtnn_bp_packed_size(n, b)
    if pa.shape[0] != need:
        raise ValueError(f"packed must have {need} bytes, got {pa.shape[0]}")
    return pa


def packed_size(Py_ssize_t n, bits):
    return int(dtnn_bp_packed_size(n, _bits(bits)))


def pack_bits(q, bits, out=None):
    cdef int b = _bits(bits)
    cdef cnp.ndarray qa = _vec(q, np.int8, "q")
    cdef Py_ssize_t n = qa.shape[0]
    cdef cnp.ndarray o = _out(out, dtnn_bp_packed_size(n, b), np.uint8, "out")
    with nogil:
        dtnn_bp_pack(<const int8_t *>cnp.PyArray_DATA(qa), <uint8_t *>cnp.PyArray_DATA(o),
                     n, b)
    return o


def unpack_bits(packed, Py_ssize_t n, bits, out=None):
    cdef int b = _bits(bits)
    cdef cnp.ndarray pa = _packed(packed, n, b)
    cdef cnp.ndarray o = _out(out, n, np.int8, "out")
    with nogil:
        dtnn_bp_unpack(<const uint8_t *>cnp.PyArray_DATA(pa), <int8_t *>cnp.PyArray_DATA(o),
                       n, b)
    return o


def dequantize_bits(packed, Py_ssize_t n, bits, Py_ssize_t chunk, scales, double levels,
                    double alpha=1.0, out=None, bint accumulate=False):
    cdef int b = _bits(bits)
    cdef cnp.ndarray pa = _packed(packed, n, b)
    cdef cnp.ndarray sa = _vec(scales, np.float32, "scales")
    if chunk < 1 or sa.shape[0] != (n + chunk - 1) // chunk:
        raise ValueError("scales must hold one value per chunk")
    cdef cnp.ndarray o = _out(out, n, np.float32, "out")
    with nogil:
        dtnn_bp_dequantize(<const uint8_t *>cnp.PyArray_DATA(pa), <float *>cnp.PyArray_DATA(o),
                           n, b, chunk, <const float *>cnp.PyArray_DATA(sa), alpha, levels,
                           accumulate)
    return o
