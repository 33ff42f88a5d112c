# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, embedsignature=True
"""Compiled BatchNorm (training) and PReLU passes over (N, C, L) float32 tensors (C
kernels in csrc/bnact.c).  Same signatures and results (up to float rounding) as the
numpy twins ``dtnn._kernels.twins.bn_stats`` ... ``prelu_backward``.  The wrappers
check shapes and dtypes and hand pointers to C, which runs without the GIL.
"""
import numpy as np

cimport numpy as cnp
from libc.stdint cimport int32_t, int64_t

cnp.import_array()

cdef extern from "bnact.h" nogil:
    void dtnn_bn_stats_f32(const float *x, int64_t N, int64_t C, int64_t L,
                           float *mean, float *var)
    void dtnn_bn_apply_f32(const float *x, float *y, int64_t N, int64_t C, int64_t L,
                           const float *scale, const float *shift)
    void dtnn_bn_backward_f32(const float *dy, const float *x, float *dx, int64_t N,
                              int64_t C, int64_t L, const float *mean,
                              const float *inv_std, const float *gamma, float *dgamma,
                              float *dbeta, int training)
    void dtnn_bn_apply_relu_f32(const float *x, float *y, int64_t N, int64_t C,
                                int64_t L, const float *scale, const float *shift)
    void dtnn_bn_relu_backward_f32(const float *dy, const float *y, const float *x,
                                   float *dx, int64_t N, int64_t C, int64_t L,
                                   const float *mean, const float *inv_std,
                                   const float *gamma, float *dgamma, float *dbeta,
                                   int training)
    void dtnn_prelu_forward_f32(const float *x, float *y, int64_t N, int64_t C,
                                int64_t L, const float *alpha)
    void dtnn_prelu_backward_f32(const float *dy, const float *x, float *dx, int64_t N,
                                 int64_t C, int64_t L, const float *alpha, float *dalpha)
    void dtnn_relu_forward_f32(const float *x, float *y, int64_t n)
    void dtnn_relu_backward_f32(const float *dy, const float *y, float *dx, int64_t n)
    void dtnn_channel_sum_f32(const float *x, int64_t N, int64_t C, int64_t L,
                              float *out)
    void dtnn_bn_relu_pool2_f32(const float *x, float *y, int32_t *argmax, int64_t N,
                                int64_t C, int64_t H, int64_t W, const float *scale,
                                const float *shift)
    int dtnn_bn_relu_pool2_backward_f32(const float *dy, const float *y,
                                         const int32_t *argmax, const float *x, float *dx,
                                         int64_t N, int64_t C, int64_t H, int64_t W,
                                         const float *mean, const float *inv_std,
                                         const float *gamma, float *dgamma,
                                         float *dbeta)


include "_arrays.pxi"


cdef cnp.ndarray _vec(object a, str name, Py_ssize_t C):
    """A per-channel float32 vector of length C."""
    v = np.ascontiguousarray(a, dtype=np.float32)
    if v.ndim != 1 or v.shape[0] != C:
        raise ValueError(f"{name} must have shape ({C},), got {np.shape(a)}")
    return v


cdef tuple _same(cnp.ndarray a, cnp.ndarray b, str na, str nb):
    if (<object>a).shape != (<object>b).shape:
        raise ValueError(f"{na} has shape {(<object>a).shape}, {nb} has {(<object>b).shape}")
    return (<object>a).shape


def bn_stats(x):
    """x float32 (N, C, L) -> (mean, biased variance), float32 (C,) each."""
    cdef cnp.ndarray xa = _input_f32(x, "x", 3)
    cdef Py_ssize_t N = xa.shape[0], C = xa.shape[1], L = xa.shape[2]
    if N * L == 0:
        raise ValueError("bn_stats: empty batch")
    cdef cnp.ndarray mean = np.empty(C, np.float32), var = np.empty(C, np.float32)
    with nogil:
        dtnn_bn_stats_f32(<const float *>cnp.PyArray_DATA(xa), N, C, L,
                          <float *>cnp.PyArray_DATA(mean), <float *>cnp.PyArray_DATA(var))
    return mean, var


cdef cnp.ndarray _bn_apply(object x, object scale, object shift, bint relu):
    """The BatchNorm apply, or apply + ReLU in one pass: one set of checks and outputs
    for both kernels."""
    cdef cnp.ndarray xa = _input_f32(x, "x", 3)
    cdef Py_ssize_t N = xa.shape[0], C = xa.shape[1], L = xa.shape[2]
    cdef cnp.ndarray a = _vec(scale, "scale", C), b = _vec(shift, "shift", C)
    cdef cnp.ndarray y = np.empty((N, C, L), np.float32)
    cdef const float *xp = <const float *>cnp.PyArray_DATA(xa)
    cdef float *yp = <float *>cnp.PyArray_DATA(y)
    cdef const float *ap = <const float *>cnp.PyArray_DATA(a)
    cdef const float *bp = <const float *>cnp.PyArray_DATA(b)
    with nogil:
        if relu:
            dtnn_bn_apply_relu_f32(xp, yp, N, C, L, ap, bp)
        else:
            dtnn_bn_apply_f32(xp, yp, N, C, L, ap, bp)
    return y


def bn_apply(x, scale, shift):
    """y = x * scale[c] + shift[c] for x float32 (N, C, L)."""
    return _bn_apply(x, scale, shift, False)


cdef tuple _bn_backward(object dy, object y, object x, object mean, object inv_std,
                        object gamma, bint training, bint need_dx):
    """The BatchNorm backward (y None) or the BatchNorm+ReLU backward gated by y > 0:
    one set of checks and outputs for both kernels."""
    cdef cnp.ndarray g = _input_f32(dy, "dy", 3)
    cdef cnp.ndarray ya = None if y is None else _input_f32(y, "y", 3)
    cdef cnp.ndarray xa = _input_f32(x, "x", 3)
    _same(g, xa, "dy", "x")
    if ya is not None:
        _same(ya, xa, "y", "x")
    cdef Py_ssize_t N = xa.shape[0], C = xa.shape[1], L = xa.shape[2]
    cdef cnp.ndarray m = _vec(mean, "mean", C), s = _vec(inv_std, "inv_std", C)
    cdef cnp.ndarray ga = _vec(gamma, "gamma", C)
    cdef cnp.ndarray dgamma = np.empty(C, np.float32), dbeta = np.empty(C, np.float32)
    cdef cnp.ndarray dx = np.empty((N, C, L), np.float32) if need_dx else None
    cdef float *dxp = <float *>cnp.PyArray_DATA(dx) if need_dx else NULL
    cdef const float *gp = <const float *>cnp.PyArray_DATA(g)
    cdef const float *yp = NULL if ya is None else <const float *>cnp.PyArray_DATA(ya)
    cdef const float *xp = <const float *>cnp.PyArray_DATA(xa)
    cdef const float *mp = <const float *>cnp.PyArray_DATA(m)
    cdef const float *sp = <const float *>cnp.PyArray_DATA(s)
    cdef const float *gap = <const float *>cnp.PyArray_DATA(ga)
    cdef float *dgp = <float *>cnp.PyArray_DATA(dgamma)
    cdef float *dbp = <float *>cnp.PyArray_DATA(dbeta)
    with nogil:
        if yp == NULL:
            dtnn_bn_backward_f32(gp, xp, dxp, N, C, L, mp, sp, gap, dgp, dbp, training)
        else:
            dtnn_bn_relu_backward_f32(gp, yp, xp, dxp, N, C, L, mp, sp, gap, dgp, dbp,
                                      training)
    return dx, dgamma, dbeta


def bn_backward(dy, x, mean, inv_std, gamma, bint training, bint need_dx):
    """-> (dx or None, dgamma, dbeta) of BatchNorm for dy, x float32 (N, C, L)."""
    return _bn_backward(dy, None, x, mean, inv_std, gamma, training, need_dx)


def bn_apply_relu(x, scale, shift):
    """y = relu(x * scale[c] + shift[c]) (NaN kept) for x float32 (N, C, L), one pass."""
    return _bn_apply(x, scale, shift, True)


def bn_relu_backward(dy, y, x, mean, inv_std, gamma, bint training, bint need_dx):
    """bn_backward of (dy where y > 0, else 0), y the fused forward's output; -> (dx or
    None, dgamma, dbeta), without the gated temporary."""
    return _bn_backward(dy, y, x, mean, inv_std, gamma, training, need_dx)


def prelu_forward(x, alpha):
    """y = x if x > 0 else alpha[c] * x, for x float32 (N, C, L)."""
    cdef cnp.ndarray xa = _input_f32(x, "x", 3)
    cdef Py_ssize_t N = xa.shape[0], C = xa.shape[1], L = xa.shape[2]
    cdef cnp.ndarray a = _vec(alpha, "alpha", C)
    cdef cnp.ndarray y = np.empty((N, C, L), np.float32)
    with nogil:
        dtnn_prelu_forward_f32(<const float *>cnp.PyArray_DATA(xa),
                               <float *>cnp.PyArray_DATA(y), N, C, L,
                               <const float *>cnp.PyArray_DATA(a))
    return y


def prelu_backward(dy, x, alpha, bint need_dx):
    """-> (dx or None, dalpha) of PReLU for dy, x float32 (N, C, L)."""
    cdef cnp.ndarray g = _input_f32(dy, "dy", 3)
    cdef cnp.ndarray xa = _input_f32(x, "x", 3)
    _same(g, xa, "dy", "x")
    cdef Py_ssize_t N = xa.shape[0], C = xa.shape[1], L = xa.shape[2]
    cdef cnp.ndarray a = _vec(alpha, "alpha", C)
    cdef cnp.ndarray dalpha = np.empty(C, np.float32)
    cdef cnp.ndarray dx = np.empty((N, C, L), np.float32) if need_dx else None
    cdef float *dxp = <float *>cnp.PyArray_DATA(dx) if need_dx else NULL
    with nogil:
        dtnn_prelu_backward_f32(<const float *>cnp.PyArray_DATA(g),
                                <const float *>cnp.PyArray_DATA(xa), dxp, N, C, L,
                                <const float *>cnp.PyArray_DATA(a),
                                <float *>cnp.PyArray_DATA(dalpha))
    return dx, dalpha


def relu_forward(x):
    """max(x, 0) (NaN kept) for a C-contiguous float32 array of any shape."""
    cdef cnp.ndarray xa = _input_f32(x, "x", np.ndim(x))
    cdef cnp.ndarray y = np.empty_like(xa)
    cdef int64_t n = cnp.PyArray_SIZE(xa)
    with nogil:
        dtnn_relu_forward_f32(<const float *>cnp.PyArray_DATA(xa),
                              <float *>cnp.PyArray_DATA(y), n)
    return y


def relu_backward(dy, y):
    """dy where y > 0, else 0 (y: the forward's output), float32 arrays of one shape."""
    cdef cnp.ndarray g = _input_f32(dy, "dy", np.ndim(dy))
    cdef cnp.ndarray ya = _input_f32(y, "y", np.ndim(y))
    _same(g, ya, "dy", "y")
    cdef cnp.ndarray dx = np.empty_like(g)
    cdef int64_t n = cnp.PyArray_SIZE(g)
    with nogil:
        dtnn_relu_backward_f32(<const float *>cnp.PyArray_DATA(g),
                               <const float *>cnp.PyArray_DATA(ya),
                               <float *>cnp.PyArray_DATA(dx), n)
    return dx


def channel_sum(x, out=None):
    """Sum of a float32 (N, C, L) array over axes 0 and 2 -> float32 (C,), written into
    ``out`` (a float32 (C,) array) when given."""
    cdef cnp.ndarray xa = _input_f32(x, "x", 3)
    cdef Py_ssize_t N = xa.shape[0], C = xa.shape[1], L = xa.shape[2]
    cdef cnp.ndarray o = _output_f32(out, (C,), xa)
    with nogil:
        dtnn_channel_sum_f32(<const float *>cnp.PyArray_DATA(xa), N, C, L,
                             <float *>cnp.PyArray_DATA(o))
    return o


def bn_apply_relu_pool2(x, scale, shift):
    """relu(x * scale[c] + shift[c]) max-pooled over 2x2 windows, stride 2, for x float32
    (N, C, H, W), H and W >= 2 -> (y float32, argmax int32 index in the H*W plane), both
    (N, C, H // 2, W // 2); the ReLU's full-size output is never written."""
    cdef cnp.ndarray xa = _input_f32(x, "x", 4)
    cdef Py_ssize_t N = xa.shape[0], C = xa.shape[1], H = xa.shape[2], W = xa.shape[3]
    if H < 2 or W < 2:
        raise ValueError(f"bn_apply_relu_pool2: a {H}x{W} map has no 2x2 window")
    if H > 2147483647 // W:
        raise ValueError(f"bn_apply_relu_pool2: a {H}x{W} map is too large for int32 argmax")
    cdef cnp.ndarray a = _vec(scale, "scale", C), b = _vec(shift, "shift", C)
    cdef cnp.ndarray y = np.empty((N, C, H // 2, W // 2), np.float32)
    cdef cnp.ndarray arg = np.empty((N, C, H // 2, W // 2), np.int32)
    with nogil:
        dtnn_bn_relu_pool2_f32(<const float *>cnp.PyArray_DATA(xa),
                               <float *>cnp.PyArray_DATA(y),
                               <int32_t *>cnp.PyArray_DATA(arg), N, C, H, W,
                               <const float *>cnp.PyArray_DATA(a),
                               <const float *>cnp.PyArray_DATA(b))
    return y, arg


def bn_relu_pool2_backward(dy, y, argmax, x, mean, inv_std, gamma, bint need_dx):
    """The training backward of ``bn_apply_relu_pool2``: dy, y, argmax (N, C, H//2, W//2)
    (y and argmax the forward's), x float32 (N, C, H, W) -> (dx or None, dgamma, dbeta),
    the same bits as maxpool_backward followed by bn_relu_backward."""
    cdef cnp.ndarray xa = _input_f32(x, "x", 4)
    cdef cnp.ndarray g = _input_f32(dy, "dy", 4)
    cdef cnp.ndarray ya = _input_f32(y, "y", 4)
    cdef Py_ssize_t N = xa.shape[0], C = xa.shape[1], H = xa.shape[2], W = xa.shape[3]
    pooled = (N, C, H // 2, W // 2)
    if (<object>g).shape != pooled or (<object>ya).shape != pooled:
        raise ValueError(f"dy and y must have shape {pooled}, got {(<object>g).shape} and "
                         f"{(<object>ya).shape}")
    if not isinstance(argmax, np.ndarray) or argmax.dtype != np.int32 \
            or argmax.shape != pooled:
        raise ValueError(f"argmax must be an int32 array of shape {pooled}")
    cdef cnp.ndarray arg = np.ascontiguousarray(argmax)
    cdef cnp.ndarray m = _vec(mean, "mean", C), s = _vec(inv_std, "inv_std", C)
    cdef cnp.ndarray ga = _vec(gamma, "gamma", C)
    cdef cnp.ndarray dgamma = np.empty(C, np.float32), dbeta = np.empty(C, np.float32)
    cdef cnp.ndarray dx = np.empty((N, C, H, W), np.float32) if need_dx else None
    cdef float *dxp = <float *>cnp.PyArray_DATA(dx) if need_dx else NULL
    cdef int rc
    with nogil:
        rc = dtnn_bn_relu_pool2_backward_f32(
            <const float *>cnp.PyArray_DATA(g), <const float *>cnp.PyArray_DATA(ya),
            <const int32_t *>cnp.PyArray_DATA(arg), <const float *>cnp.PyArray_DATA(xa),
            dxp, N, C, H, W, <const float *>cnp.PyArray_DATA(m),
            <const float *>cnp.PyArray_DATA(s), <const float *>cnp.PyArray_DATA(ga),
            <float *>cnp.PyArray_DATA(dgamma), <float *>cnp.PyArray_DATA(dbeta))
    if rc != 0:
        raise MemoryError(f"bn_relu_pool2_backward: no {H * W}-float row buffer")
    return dx, dgamma, dbeta
