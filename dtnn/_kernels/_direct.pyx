# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled direct convolution (C in csrc/direct.c); twins in ``dtnn.conv.kernels``.

conv_params = (R, S, sh, sw, ph, pw, dh, dw, G); all arrays float32 NCHW.
"""
import numpy as np

cimport numpy as cnp

from dtnn._kernels._convk cimport (
    dtnn_direct_bwd_data_f32,
    dtnn_direct_bwd_weights_f32,
    dtnn_direct_fwd_f32,
)

cnp.import_array()

include "_isa.pxi"


include "_arrays.pxi"


cdef Py_ssize_t _osz(Py_ssize_t n, Py_ssize_t k, Py_ssize_t st, Py_ssize_t p, Py_ssize_t d):
    return (n + 2 * p - d * (k - 1) - 1) // st + 1


def direct_forward(x, w, bias, Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw,
                   Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t G):
    """y = conv(x, w) + bias: x (N, C, H, W), w (K, C/G, R, S) -> (N, K, Ho, Wo)."""
    cdef cnp.ndarray xa = _f32c(x, "x", 4), wa = _f32c(w, "w", 4), ba
    cdef Py_ssize_t N = xa.shape[0], C = xa.shape[1], H = xa.shape[2], W = xa.shape[3]
    cdef Py_ssize_t K = wa.shape[0], R = wa.shape[2], S = wa.shape[3]
    if G < 1 or C % G or K % G or wa.shape[1] != C // G:
        raise ValueError("inconsistent channels / groups")
    cdef Py_ssize_t Ho = _osz(H, R, sh, ph, dh), Wo = _osz(W, S, sw, pw, dw)
    if Ho < 1 or Wo < 1:
        raise ValueError("kernel does not fit the input")
    cdef const float *bp = NULL
    if bias is not None:
        ba = _f32c(bias, "bias", 1)
        bp = <const float *>cnp.PyArray_DATA(ba)
    cdef cnp.ndarray y = np.empty((N, K, Ho, Wo), np.float32)
    cdef const float *xp = <const float *>cnp.PyArray_DATA(xa)
    cdef const float *wp = <const float *>cnp.PyArray_DATA(wa)
    cdef float *yp = <float *>cnp.PyArray_DATA(y)
    with nogil:
        dtnn_direct_fwd_f32(xp, wp, bp, yp, N, C, H, W, K, R, S, sh, sw, ph, pw, dh, dw, G,
                            Ho, Wo)
    return y


def direct_backward_data(dy, w, Py_ssize_t H, Py_ssize_t W, Py_ssize_t sh, Py_ssize_t sw,
                         Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw,
                         Py_ssize_t G):
    """dx (N, C, H, W) from dy (N, K, Ho, Wo) and w (K, C/G, R, S)."""
    cdef cnp.ndarray da = _f32c(dy, "dy", 4), wa = _f32c(w, "w", 4)
    cdef Py_ssize_t N = da.shape[0], K = da.shape[1], Ho = da.shape[2], Wo = da.shape[3]
    cdef Py_ssize_t Cg = wa.shape[1], R = wa.shape[2], S = wa.shape[3], C = Cg * G
    if wa.shape[0] != K or K % G or Ho != _osz(H, R, sh, ph, dh) or Wo != _osz(W, S, sw, pw, dw):
        raise ValueError("inconsistent shapes")
    cdef cnp.ndarray dx = np.empty((N, C, H, W), np.float32)
    cdef const float *dp = <const float *>cnp.PyArray_DATA(da)
    cdef const float *wp = <const float *>cnp.PyArray_DATA(wa)
    cdef float *xp = <float *>cnp.PyArray_DATA(dx)
    with nogil:
        dtnn_direct_bwd_data_f32(dp, wp, xp, N, C, H, W, K, R, S, sh, sw, ph, pw, dh, dw, G,
                                 Ho, Wo)
    return dx


def direct_backward_weights(dy, x, Py_ssize_t R, Py_ssize_t S, Py_ssize_t sh,
                            Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh,
                            Py_ssize_t dw, Py_ssize_t G):
    """dw (K, C/G, R, S) from dy (N, K, Ho, Wo) and x (N, C, H, W)."""
    cdef cnp.ndarray da = _f32c(dy, "dy", 4), xa = _f32c(x, "x", 4)
    cdef Py_ssize_t N = da.shape[0], K = da.shape[1], Ho = da.shape[2], Wo = da.shape[3]
    cdef Py_ssize_t C = xa.shape[1], H = xa.shape[2], W = xa.shape[3]
    if xa.shape[0] != N or C % G or K % G or Ho != _osz(H, R, sh, ph, dh) or Wo != _osz(W, S, sw, pw, dw):
        raise ValueError("inconsistent shapes")
    cdef cnp.ndarray dwt = np.empty((K, C // G, R, S), np.float32)
    cdef const float *dp = <const float *>cnp.PyArray_DATA(da)
    cdef const float *xp = <const float *>cnp.PyArray_DATA(xa)
    cdef float *wp = <float *>cnp.PyArray_DATA(dwt)
    with nogil:
        dtnn_direct_bwd_weights_f32(dp, xp, wp, N, C, H, W, K, R, S, sh, sw, ph, pw, dh, dw,
                                    G, Ho, Wo)
    return dwt


def isa_paths():
    """Kernel name -> ISA paths compiled in (per-plane loops cloned per ISA, csrc/direct.c)."""
    names = ("direct_forward", "direct_backward_data", "direct_backward_weights")
    return {n: ["avx512", "avx2", "generic"] for n in names}
