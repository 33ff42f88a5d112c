# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled Winograd F(2x2,3x3) / F(4x4,3x3) transforms (C in csrc/winograd.c).

Same contract and results as the numpy twins in ``dtnn.conv.kernels``
(``winograd_input`` / ``winograd_output``); see csrc/winograd.h for the layouts.
"""
import numpy as np

cimport numpy as cnp

from dtnn._kernels._convk cimport dtnn_wino_input_f32, dtnn_wino_output_f32

cnp.import_array()


cdef cnp.ndarray _f32c(object a, str name, int ndim):
    if not isinstance(a, np.ndarray) or a.dtype != np.float32 or a.ndim != ndim:
        raise ValueError(f"{name} must be a {ndim}-D float32 numpy array")
    return np.ascontiguousarray(a)


cdef cnp.ndarray _out(object out, tuple shape):
    if out is None:
        return np.empty(shape, np.float32)
    if (not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.shape != shape
            or not out.flags.c_contiguous or not out.flags.writeable):
        raise ValueError(f"out must be a writeable C-contiguous float32 array {shape}")
    return out


def winograd_input(x, Py_ssize_t pad_h, Py_ssize_t pad_w, Py_ssize_t m,
                   Py_ssize_t th, Py_ssize_t tw, out=None):
    """x (nb, C, H, W) -> V ((m+2)**2, C, nb*th*tw)."""
    if m != 2 and m != 4:
        raise ValueError(f"tile size m must be 2 or 4, got {m}")
    cdef cnp.ndarray xa = _f32c(x, "x", 4)
    cdef Py_ssize_t nb = xa.shape[0], C = xa.shape[1], H = xa.shape[2], W = xa.shape[3]
    cdef Py_ssize_t a = m + 2
    cdef cnp.ndarray V = _out(out, (a * a, C, nb * th * tw))
    cdef const float *xp = <const float *>cnp.PyArray_DATA(xa)
    cdef float *vp = <float *>cnp.PyArray_DATA(V)
    with nogil:
        dtnn_wino_input_f32(xp, vp, nb, C, H, W, pad_h, pad_w, m, th, tw)
    return V


def winograd_output(M, bias, Py_ssize_t nb, Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t m,
                    Py_ssize_t th, Py_ssize_t tw, out=None):
    """M ((m+2)**2, K, nb*th*tw) -> y (nb, K, Ho, Wo) (+ bias (K,) when not None)."""
    if m != 2 and m != 4:
        raise ValueError(f"tile size m must be 2 or 4, got {m}")
    cdef cnp.ndarray Ma = _f32c(M, "M", 3)
    cdef Py_ssize_t K = Ma.shape[1]
    if Ma.shape[0] != (m + 2) * (m + 2) or Ma.shape[2] != nb * th * tw:
        raise ValueError(f"M has shape {M.shape}, inconsistent with m={m}, tiles={nb*th*tw}")
    cdef cnp.ndarray ba
    cdef const float *bp = NULL
    if bias is not None:
        ba = _f32c(bias, "bias", 1)
        if ba.shape[0] != K:
            raise ValueError("bias must have K entries")
        bp = <const float *>cnp.PyArray_DATA(ba)
    cdef cnp.ndarray y = _out(out, (nb, K, Ho, Wo))
    cdef const float *mp = <const float *>cnp.PyArray_DATA(Ma)
    cdef float *yp = <float *>cnp.PyArray_DATA(y)
    with nogil:
        dtnn_wino_output_f32(mp, yp, bp, nb, K, Ho, Wo, m, th, tw)
    return y
