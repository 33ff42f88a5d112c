# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, embedsignature=True
"""Compiled max pooling (C kernels in csrc/pool.c).

Same signatures and results as ``dtnn._kernels.twins.maxpool_forward`` /
``maxpool_backward``.  This wrapper only validates its arguments and hands pointers
to C; the C call runs without the GIL.
"""
import numpy as np

cimport numpy as cnp
from libc.stdint cimport int32_t, int64_t

from dtnn._kernels._ckernels cimport dtnn_maxpool_bwd_f32, dtnn_maxpool_fwd_f32

cnp.import_array()

cdef object _F32 = np.dtype(np.float32)
cdef object _I32 = np.dtype(np.int32)
cdef Py_ssize_t _INT32_MAX = 2147483647


include "_arrays.pxi"


def maxpool_forward(x, Py_ssize_t R, Py_ssize_t S, Py_ssize_t stride_h,
                    Py_ssize_t stride_w, Py_ssize_t pad_h, Py_ssize_t pad_w):
    """x float32 (N, C, H, W) -> (y float32, argmax int32), both (N, C, Ho, Wo)."""
    cdef cnp.ndarray xa = _input_f32(x, "x", 4)
    _check_window("window", R, S, stride_h, stride_w, pad_h, pad_w)
    cdef Py_ssize_t N = xa.shape[0], C = xa.shape[1], H = xa.shape[2], W = xa.shape[3]
    if H < 1 or W < 1:
        raise ValueError(f"x has an empty spatial size {H}x{W}")
    if H > _INT32_MAX // W:
        raise ValueError(f"a {H}x{W} map is too large for int32 argmax")
    cdef Py_ssize_t nh = H + 2 * pad_h - R, nw = W + 2 * pad_w - S
    if nh < 0 or nw < 0:
        raise ValueError(f"a {R}x{S} window (padding {pad_h}x{pad_w}) does not fit "
                         f"a {H}x{W} input")
    cdef Py_ssize_t Ho = nh // stride_h + 1, Wo = nw // stride_w + 1
    cdef cnp.ndarray y = np.empty((N, C, Ho, Wo), dtype=np.float32)
    cdef cnp.ndarray arg = np.empty((N, C, Ho, Wo), dtype=np.int32)
    cdef const float *xp = <const float *>cnp.PyArray_DATA(xa)
    cdef float *yp = <float *>cnp.PyArray_DATA(y)
    cdef int32_t *ap = <int32_t *>cnp.PyArray_DATA(arg)
    with nogil:
        dtnn_maxpool_fwd_f32(xp, yp, ap, N, C, H, W, R, S, stride_h, stride_w,
                             pad_h, pad_w, Ho, Wo)
    return y, arg


def maxpool_backward(dy, argmax, Py_ssize_t H, Py_ssize_t W, out=None):
    """Route dy float32 (N, C, Ho, Wo) to the argmax pixels: dx float32 (N, C, H, W).

    ``argmax`` must have dy's shape and an integer dtype (int32 is used as is,
    other integer types are converted); an index outside [0, H*W) raises ValueError.
    """
    cdef cnp.ndarray g = _input_f32(dy, "dy", 4)
    if not isinstance(argmax, np.ndarray):
        raise ValueError(f"argmax must be a numpy.ndarray, got {type(argmax).__name__}")
    if argmax.dtype.kind not in "iu":
        raise ValueError(f"argmax must be an integer array (int32), got {argmax.dtype}")
    if argmax.shape != (<object>g).shape:
        raise ValueError(f"argmax has shape {argmax.shape}, dy has shape {(<object>g).shape}")
    cdef cnp.ndarray a = np.ascontiguousarray(argmax, dtype=np.int32)
    if H < 1 or W < 1:
        raise ValueError(f"invalid input size {H}x{W}")
    if H > _INT32_MAX // W:
        raise ValueError(f"a {H}x{W} map is too large for int32 argmax")
    cdef Py_ssize_t N = g.shape[0], C = g.shape[1]
    shape = (N, C, H, W)
    cdef cnp.ndarray dx = _output_f32(out, shape, (g, a))
    cdef const float *gp = <const float *>cnp.PyArray_DATA(g)
    cdef const int32_t *ap = <const int32_t *>cnp.PyArray_DATA(a)
    cdef float *dp = <float *>cnp.PyArray_DATA(dx)
    cdef int64_t planes = N * C, L = g.shape[2] * g.shape[3], HW = H * W
    cdef int64_t bad
    with nogil:
        bad = dtnn_maxpool_bwd_f32(gp, ap, dp, planes, L, HW)
    if bad:
        raise ValueError(f"argmax has {bad} entries outside [0, H*W) = [0, {HW})")
    return dx
