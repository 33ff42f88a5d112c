# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, embedsignature=True
"""Compiled fused optimizer updates (C in csrc/optim.c) over flat float32 vectors.
Same signatures and the same bits as the numpy twins in ``dtnn.optim._update``; the
``work`` argument (the twins' scratch vectors) is accepted and ignored.  The arrays are
updated in place, so they must be the caller's own C-contiguous float32 vectors: a
copy would silently update nothing, so anything else is a ValueError.
"""
import numpy as np

cimport numpy as cnp
from libc.stdint cimport int64_t

cnp.import_array()

cdef extern from "optim.h" nogil:
    void dtnn_sgd_update_f32(float *p, const float *g, const float *mask, float *buf,
                             int64_t n, float neg_lr, int has_wd, float wd,
                             int has_momentum, float mom, int has_dampening,
                             float one_minus_damp, int nesterov, int first)
    void dtnn_adam_update_f32(float *p, const float *g, const float *mask, float *m,
                              float *v, int64_t n, int decay, float wd, int lerp_small,
                              float w, float one_minus_w, float b2, float one_minus_b2,
                              float neg_step, float bc2_sqrt, float eps)


cdef float *_vector(object a, str name, int64_t n, bint writable) except NULL:
    """The data of ``a``, checked to be a C-contiguous float32 ndarray of n elements."""
    if not isinstance(a, np.ndarray):
        raise ValueError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    cdef cnp.ndarray arr = <cnp.ndarray>a
    if arr.dtype != np.float32:
        raise ValueError(f"{name} must be float32, got {arr.dtype}")
    if cnp.PyArray_SIZE(arr) != n:
        raise ValueError(f"{name} has {cnp.PyArray_SIZE(arr)} elements, expected {n}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(arr):
        raise ValueError(f"{name} must be C-contiguous")
    if writable and not cnp.PyArray_ISWRITEABLE(arr):
        raise ValueError(f"{name} is read-only")
    if n == 0:
        return <float *>&_EMPTY[0]
    return <float *>cnp.PyArray_DATA(arr)


cdef float _EMPTY[1]


def _distinct(names, arrays):
    for i in range(len(arrays)):
        for j in range(i + 1, len(arrays)):
            if np.may_share_memory(arrays[i], arrays[j]):
                raise ValueError(f"{names[i]} and {names[j]} must not overlap")


def sgd_update(p, g, mask, buf, double neg_lr, double wd, double mom,
               double one_minus_damp, bint nesterov, bint first, work=None):
    """One SGD step in place on p (and buf when mom != 0): see the twin."""
    if not isinstance(p, np.ndarray):
        raise ValueError(f"p must be a numpy.ndarray, got {type(p).__name__}")
    cdef int64_t n = cnp.PyArray_SIZE(<cnp.ndarray>p)
    cdef bint has_mom = mom != 0
    cdef float *pp = _vector(p, "p", n, True)
    cdef const float *gp = _vector(g, "g", n, False)
    cdef const float *mp = _vector(mask, "mask", n, False)
    cdef float *bp = NULL
    if has_mom:
        bp = _vector(buf, "buf", n, True)
        _distinct(("p", "g", "mask", "buf"), (p, g, mask, buf))
    else:
        _distinct(("p", "g", "mask"), (p, g, mask))
    with nogil:
        dtnn_sgd_update_f32(pp, gp, mp, bp, n, <float>neg_lr, wd != 0, <float>wd, has_mom,
                            <float>mom, one_minus_damp != 1.0, <float>one_minus_damp,
                            nesterov, first)


def adam_update(p, g, mask, m, v, int decay, double wd, double w, double one_minus_w,
                double b2, double one_minus_b2, double neg_step, double bc2_sqrt,
                double eps, work=None):
    """One Adam step in place on p, m, v: see the twin."""
    if decay not in (0, 1, 2):
        raise ValueError(f"decay must be 0, 1 or 2, got {decay}")
    if not isinstance(p, np.ndarray):
        raise ValueError(f"p must be a numpy.ndarray, got {type(p).__name__}")
    cdef int64_t n = cnp.PyArray_SIZE(<cnp.ndarray>p)
    cdef float *pp = _vector(p, "p", n, True)
    cdef const float *gp = _vector(g, "g", n, False)
    cdef const float *mp = _vector(mask, "mask", n, False)
    cdef float *ma = _vector(m, "m", n, True)
    cdef float *va = _vector(v, "v", n, True)
    _distinct(("p", "g", "mask", "m", "v"), (p, g, mask, m, v))
    with nogil:
        dtnn_adam_update_f32(pp, gp, mp, ma, va, n, decay, <float>wd, abs(w) < 0.5,
                             <float>w, <float>one_minus_w, <float>b2, <float>one_minus_b2,
                             <float>neg_step, <float>bc2_sqrt, <float>eps)
