# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, embedsignature=True
"""Compiled counter-based random numbers (C in csrc/rng.c): Philox4x64-10 streams.

Same signatures and bits as the numpy twins in ``dtnn.rng.twins`` (which document the
contract).  Keys and counters are unsigned 64-bit integers; ``dtnn.rng`` checks them
and is the API to call.  The wrappers check the output arrays, then run C without the
GIL.
"""
import numpy as np

cimport numpy as cnp
from libc.stdint cimport int32_t, int64_t, uint64_t

cnp.import_array()

cdef extern from "rng.h" nogil:
    void dtnn_philox4x64_10(const uint64_t *ctr, const uint64_t *key, uint64_t *out)
    void dtnn_rng_u64(uint64_t key0, uint64_t key1, uint64_t c1, uint64_t c2, uint64_t c3,
                      int64_t start, int64_t n, uint64_t *out)
    void dtnn_rng_uniform_f32(uint64_t key0, uint64_t key1, uint64_t c1, uint64_t c2,
                              uint64_t c3, int64_t start, int64_t n, float *out)
    int dtnn_rng_sample_sorted(uint64_t key0, uint64_t key1, uint64_t c1, uint64_t c2,
                               uint64_t c3, int64_t n, int64_t k, int32_t *out)


cdef cnp.ndarray _output(object out, int64_t n, object dtype):
    """A new 1-D array of n ``dtype`` elements, or ``out`` checked to be one."""
    if out is None:
        return np.empty(n, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise ValueError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    cdef cnp.ndarray arr = <cnp.ndarray>out
    if arr.dtype != dtype:
        raise ValueError(f"out must be {np.dtype(dtype)}, got {arr.dtype}")
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"out has shape {out.shape}, expected ({n},)")
    if not cnp.PyArray_IS_C_CONTIGUOUS(arr):
        raise ValueError("out must be C-contiguous")
    if not cnp.PyArray_ISWRITEABLE(arr):
        raise ValueError("out is read-only")
    return arr


def _counts(int64_t start, int64_t n):
    if start < 0 or n < 0:
        raise ValueError(f"start and n must be >= 0, got {start} and {n}")


def philox4x64_10(ctr, key):
    """One Philox4x64-10 block: 4 uint64 words from ``ctr`` (4 words) and ``key`` (2)."""
    cdef uint64_t c[4]
    cdef uint64_t k[2]
    if len(ctr) != 4 or len(key) != 2:
        raise ValueError("philox4x64_10 needs a counter of 4 words and a key of 2")
    for i in range(4):
        c[i] = <uint64_t>int(ctr[i])
    for i in range(2):
        k[i] = <uint64_t>int(key[i])
    cdef cnp.ndarray out = np.empty(4, np.uint64)
    dtnn_philox4x64_10(c, k, <uint64_t *>cnp.PyArray_DATA(out))
    return out


def random_u64(uint64_t key0, uint64_t key1, uint64_t c1, uint64_t c2, uint64_t c3,
               int64_t start, int64_t n, out=None):
    _counts(start, n)
    cdef cnp.ndarray res = _output(out, n, np.uint64)
    cdef uint64_t *p = <uint64_t *>cnp.PyArray_DATA(res)
    with nogil:
        dtnn_rng_u64(key0, key1, c1, c2, c3, start, n, p)
    return res


def uniform_f32(uint64_t key0, uint64_t key1, uint64_t c1, uint64_t c2, uint64_t c3,
                int64_t start, int64_t n, out=None):
    _counts(start, n)
    cdef cnp.ndarray res = _output(out, n, np.float32)
    cdef float *p = <float *>cnp.PyArray_DATA(res)
    with nogil:
        dtnn_rng_uniform_f32(key0, key1, c1, c2, c3, start, n, p)
    return res


def sample_sorted(uint64_t key0, uint64_t key1, uint64_t c1, uint64_t c2, uint64_t c3,
                  int64_t n, int64_t k, out=None):
    if not 0 <= k <= n <= 2147483648:
        raise ValueError(f"sample_sorted needs 0 <= k <= n <= 2**31, got k={k}, n={n}")
    cdef cnp.ndarray res = _output(out, k, np.int32)
    cdef int32_t *p = <int32_t *>cnp.PyArray_DATA(res)
    cdef int rc
    with nogil:
        rc = dtnn_rng_sample_sorted(key0, key1, c1, c2, c3, n, k, p)
    if rc != 0:
        raise MemoryError(f"sample_sorted: no memory for the bit map of {n} values")
    return res
