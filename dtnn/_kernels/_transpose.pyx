# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled parallel axis swap (C in csrc/transpose.c); twin in ``dtnn.conv.kernels``."""
import numpy as np

cimport numpy as cnp

from dtnn._kernels._convk cimport dtnn_swap01_f32

cnp.import_array()


def swap01(src, out=None):
    """src (A, B, P) float32 -> (B, A, P) C-contiguous copy (into ``out`` if given)."""
    if not isinstance(src, np.ndarray) or src.dtype != np.float32 or src.ndim != 3:
        raise ValueError("src must be a 3-D float32 numpy array")
    cdef cnp.ndarray s = np.ascontiguousarray(src)
    cdef Py_ssize_t A = s.shape[0], B = s.shape[1], P = s.shape[2]
    cdef cnp.ndarray d
    if out is None:
        d = np.empty((B, A, P), np.float32)
    else:
        if (not isinstance(out, np.ndarray) or out.dtype != np.float32
                or out.shape != (B, A, P) or not out.flags.c_contiguous):
            raise ValueError("out must be a C-contiguous float32 array (B, A, P)")
        d = out
    cdef const float *sp = <const float *>cnp.PyArray_DATA(s)
    cdef float *dp = <float *>cnp.PyArray_DATA(d)
    with nogil:
        dtnn_swap01_f32(sp, dp, A, B, P)
    return d
