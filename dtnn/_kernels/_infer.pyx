# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, embedsignature=True
"""Compiled inference kernels (C in csrc/infer.c) and the executor of a fused plan.

Kernels (same signatures and results as the numpy twins in ``dtnn.infer.kernels``):

    infer_conv_px(x, wpk, bias, alpha, act, K, R, S, ph, pw, dh, dw, out=None)
    infer_conv_ch(x, wck, bias, alpha, act, K, R, S, sh, sw, ph, pw, dh, dw, out=None)
    infer_affine_act(x, scale, shift, act, alpha, out=None)
    infer_maxpool(x, R, S, sh, sw, ph, pw, out=None)

Executor: the ``*Op`` classes hold one step of a plan bound to a batch size (packed
weights, their output buffer and workspace, allocated once); ``run(ops, x)`` runs a
list of them through C-level method calls, so a step costs its kernel and a few tens of
nanoseconds, not a Python call with argument parsing.
"""
import numpy as np

cimport numpy as cnp
from libc.stdint cimport int32_t, int64_t

cnp.import_array()

include "_isa.pxi"

cdef extern from "infer.h" nogil:
    int DTNN_INFER_PX_KB
    int DTNN_INFER_CH_KP
    int64_t dtnn_infer_px_span(int64_t Ho, int64_t Wp)
    int64_t dtnn_infer_px_slack(int64_t S, int64_t dw)
    void dtnn_infer_conv_px_f32(const float *x, float *xpad, const float *wpk,
                                const float *bias, const float *alpha, int act, float *y,
                                int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                                int64_t R, int64_t S, int64_t ph, int64_t pw,
                                int64_t dh, int64_t dw, int64_t Ho, int64_t Wo)
    void dtnn_infer_conv_ch_f32(const float *x, const float *wck, const float *bias,
                                const float *alpha, int act, float *y,
                                int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                                int64_t Kp, int64_t R, int64_t S, int64_t sh, int64_t sw,
                                int64_t ph, int64_t pw, int64_t dh, int64_t dw,
                                int64_t Ho, int64_t Wo)
    void dtnn_infer_affine_act_f32(const float *x, float *y, int64_t N, int64_t C,
                                   int64_t P, const float *scale, const float *shift,
                                   int act, const float *alpha)
    void dtnn_infer_maxpool_f32(const float *x, float *y, int64_t N, int64_t C, int64_t H,
                                int64_t W, int64_t R, int64_t S, int64_t sh, int64_t sw,
                                int64_t ph, int64_t pw, int64_t Ho, int64_t Wo)

cdef object _F32 = np.dtype(np.float32)

PX_KB = DTNN_INFER_PX_KB
CH_KP = DTNN_INFER_CH_KP


def isa_paths():
    """Kernel name -> ISA paths compiled in (csrc/infer.c)."""
    vec = ["avx512", "avx2", "generic"]
    return {"infer_conv_px": vec, "infer_conv_ch": vec, "infer_affine_act": ["generic"],
            "infer_maxpool": ["generic"]}


def px_span(Py_ssize_t Ho, Py_ssize_t Wp):
    return dtnn_infer_px_span(Ho, Wp)


def px_slack(Py_ssize_t S, Py_ssize_t dw):
    return dtnn_infer_px_slack(S, dw)


cdef cnp.ndarray _arr(object a, str name, int ndim):
    if not isinstance(a, np.ndarray) or a.dtype != _F32 or (ndim and a.ndim != ndim):
        raise ValueError(f"{name} must be a {ndim}-D float32 numpy array" if ndim
                         else f"{name} must be a float32 numpy array")
    return np.ascontiguousarray(a)


cdef cnp.ndarray _vec(object a, str name, Py_ssize_t n):
    cdef cnp.ndarray v = _arr(a, name, 1)
    if v.shape[0] < n:
        raise ValueError(f"{name} has {v.shape[0]} values, needs {n}")
    return v


cdef cnp.ndarray _out(object out, tuple shape):
    if out is None:
        return np.empty(shape, np.float32)
    if (not isinstance(out, np.ndarray) or out.dtype != _F32 or out.shape != shape
            or not out.flags.c_contiguous or not out.flags.writeable):
        raise ValueError(f"out must be a writeable C-contiguous float32 array of shape {shape}")
    return out


cdef inline float *_f(cnp.ndarray a):
    return <float *>cnp.PyArray_DATA(a)


cdef int _act(int act) except -1:
    if act < 0 or act > 3:
        raise ValueError(f"act must be 0 (none), 1 (relu), 2 (relu6) or 3 (prelu), got {act}")
    return act


cdef Py_ssize_t _osz(Py_ssize_t n, Py_ssize_t k, Py_ssize_t st, Py_ssize_t p, Py_ssize_t d):
    return (n + 2 * p - d * (k - 1) - 1) // st + 1


def px_workspace(Py_ssize_t N, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t S,
                 Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dw):
    """The pixel kernel's zeroed padded-image buffer for N images."""
    return np.zeros(N * C * (H + 2 * ph) * (W + 2 * pw) + dtnn_infer_px_slack(S, dw),
                    np.float32)


def infer_conv_px(x, wpk, bias, alpha, int act, Py_ssize_t K, Py_ssize_t R, Py_ssize_t S,
                  Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw, out=None):
    """y = act(conv(x, w) + bias), stride 1: x (N, C, H, W), ``wpk`` the filters packed
    by ``dtnn.infer.kernels.pack_px`` -> y (N, K, Ho, Wo)."""
    cdef cnp.ndarray xa = _arr(x, "x", 4)
    cdef Py_ssize_t N = xa.shape[0], C = xa.shape[1], H = xa.shape[2], W = xa.shape[3]
    cdef Py_ssize_t nkb = (K + DTNN_INFER_PX_KB - 1) // DTNN_INFER_PX_KB
    cdef cnp.ndarray wa = _arr(wpk, "wpk", 3)
    if wa.shape[0] != nkb or wa.shape[1] != C * R * S or wa.shape[2] != DTNN_INFER_PX_KB:
        raise ValueError(f"wpk has shape {wpk.shape}, expected ({nkb}, {C * R * S}, "
                         f"{DTNN_INFER_PX_KB})")
    _act(act)
    if R < 1 or S < 1 or ph < 0 or pw < 0 or dh < 1 or dw < 1:
        raise ValueError("bad kernel, padding or dilation")
    cdef Py_ssize_t Ho = _osz(H, R, 1, ph, dh), Wo = _osz(W, S, 1, pw, dw)
    if Ho < 1 or Wo < 1:
        raise ValueError("the kernel does not fit the input")
    cdef cnp.ndarray ba = _vec(bias, "bias", nkb * DTNN_INFER_PX_KB)
    cdef cnp.ndarray aa = _vec(alpha, "alpha", nkb * DTNN_INFER_PX_KB) if act == 3 else ba
    cdef cnp.ndarray ya = _out(out, (N, K, Ho, Wo))
    cdef cnp.ndarray xp = px_workspace(N, C, H, W, S, ph, pw, dw)
    dtnn_infer_conv_px_f32(_f(xa), _f(xp), _f(wa), _f(ba), _f(aa), act, _f(ya),
                           N, C, H, W, K, R, S, ph, pw, dh, dw, Ho, Wo)
    return ya


def infer_conv_ch(x, wck, bias, alpha, int act, Py_ssize_t K, Py_ssize_t R, Py_ssize_t S,
                  Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh,
                  Py_ssize_t dw, out=None):
    """y = act(conv(x, w) + bias), any stride: x (N, C, H, W), ``wck`` the filters
    packed by ``dtnn.infer.kernels.pack_ch`` -> y (N, K, Ho, Wo)."""
    cdef cnp.ndarray xa = _arr(x, "x", 4)
    cdef Py_ssize_t N = xa.shape[0], C = xa.shape[1], H = xa.shape[2], W = xa.shape[3]
    cdef Py_ssize_t Kp = (K + DTNN_INFER_CH_KP - 1) // DTNN_INFER_CH_KP * DTNN_INFER_CH_KP
    cdef cnp.ndarray wa = _arr(wck, "wck", 2)
    if wa.shape[0] != C * R * S or wa.shape[1] != Kp:
        raise ValueError(f"wck has shape {wck.shape}, expected ({C * R * S}, {Kp})")
    _act(act)
    if R < 1 or S < 1 or sh < 1 or sw < 1 or ph < 0 or pw < 0 or dh < 1 or dw < 1:
        raise ValueError("bad kernel, stride, padding or dilation")
    cdef Py_ssize_t Ho = _osz(H, R, sh, ph, dh), Wo = _osz(W, S, sw, pw, dw)
    if Ho < 1 or Wo < 1:
        raise ValueError("the kernel does not fit the input")
    cdef cnp.ndarray ba = _vec(bias, "bias", Kp)
    cdef cnp.ndarray aa = _vec(alpha, "alpha", Kp) if act == 3 else ba
    cdef cnp.ndarray ya = _out(out, (N, K, Ho, Wo))
    dtnn_infer_conv_ch_f32(_f(xa), _f(wa), _f(ba), _f(aa), act, _f(ya), N, C, H, W, K, Kp,
                           R, S, sh, sw, ph, pw, dh, dw, Ho, Wo)
    return ya


def infer_affine_act(x, scale, shift, int act, alpha, out=None):
    """y[:, c] = act(x[:, c] * scale[c] + shift[c]) for x (N, C, ...); scale / shift may
    be None; ``out`` may be x."""
    cdef cnp.ndarray xa = _arr(x, "x", 0)
    if xa.ndim < 2:
        raise ValueError("x must be at least 2-D (N, C, ...)")
    cdef Py_ssize_t N = xa.shape[0], C = xa.shape[1]
    cdef Py_ssize_t P = xa.size // max(1, N * C)
    _act(act)
    cdef cnp.ndarray sa = _vec(scale, "scale", C) if scale is not None else None
    cdef cnp.ndarray ta = _vec(shift, "shift", C) if shift is not None else None
    cdef cnp.ndarray aa = _vec(alpha, "alpha", C) if act == 3 else None
    cdef cnp.ndarray ya = _out(out, (<object>xa).shape)
    dtnn_infer_affine_act_f32(_f(xa), _f(ya), N, C, P, _f(sa) if sa is not None else NULL,
                              _f(ta) if ta is not None else NULL, act,
                              _f(aa) if aa is not None else NULL)
    return ya


def infer_maxpool(x, Py_ssize_t R, Py_ssize_t S, Py_ssize_t sh, Py_ssize_t sw,
                  Py_ssize_t ph, Py_ssize_t pw, out=None):
    """Max pooling of x (N, C, H, W) (padding never wins) -> (N, C, Ho, Wo)."""
    cdef cnp.ndarray xa = _arr(x, "x", 4)
    cdef Py_ssize_t N = xa.shape[0], C = xa.shape[1], H = xa.shape[2], W = xa.shape[3]
    if R < 1 or S < 1 or sh < 1 or sw < 1 or ph < 0 or pw < 0:
        raise ValueError("bad window, stride or padding")
    cdef Py_ssize_t Ho = (H + 2 * ph - R) // sh + 1, Wo = (W + 2 * pw - S) // sw + 1
    if Ho < 1 or Wo < 1:
        raise ValueError("the window does not fit the input")
    cdef cnp.ndarray ya = _out(out, (N, C, Ho, Wo))
    dtnn_infer_maxpool_f32(_f(xa), _f(ya), N, C, H, W, R, S, sh, sw, ph, pw, Ho, Wo)
    return ya


# --- the executor ------------------------------------------------------------------------
cdef class Op:
    """One step of a bound plan; ``out`` is its output buffer (None: returns a view or
    a new array)."""
    cdef public object out

    cdef object run(self, object x):
        raise NotImplementedError

    def __call__(self, x):
        """Run this step alone (tests)."""
        return self.run(np.ascontiguousarray(x, np.float32))


cpdef object run(list ops, object x):
    """Run the steps in order on x (C-contiguous float32 of the bound shape)."""
    cdef Op op
    for op in ops:
        x = op.run(x)
    return x


cdef class ConvPxOp(Op):
    cdef cnp.ndarray wpk, bias, alpha, xpad
    cdef int act
    cdef int64_t N, C, H, W, K, R, S, ph, pw, dh, dw, Ho, Wo

    def __init__(self, Py_ssize_t N, tuple in_shape, wpk, bias, alpha, int act,
                 Py_ssize_t K, Py_ssize_t R, Py_ssize_t S, Py_ssize_t ph, Py_ssize_t pw,
                 Py_ssize_t dh, Py_ssize_t dw):
        self.N, self.C, self.H, self.W = N, in_shape[0], in_shape[1], in_shape[2]
        self.K, self.R, self.S, self.ph, self.pw, self.dh, self.dw = K, R, S, ph, pw, dh, dw
        self.Ho, self.Wo = _osz(self.H, R, 1, ph, dh), _osz(self.W, S, 1, pw, dw)
        self.wpk, self.bias = _arr(wpk, "wpk", 3), _arr(bias, "bias", 1)
        self.alpha = _arr(alpha, "alpha", 1) if act == 3 else self.bias
        self.act = _act(act)
        self.xpad = px_workspace(N, self.C, self.H, self.W, S, ph, pw, dw)
        self.out = np.empty((N, K, self.Ho, self.Wo), np.float32)

    cdef object run(self, object x):
        dtnn_infer_conv_px_f32(<const float *>cnp.PyArray_DATA(x), _f(self.xpad),
                               _f(self.wpk), _f(self.bias), _f(self.alpha), self.act,
                               _f(self.out),
                               self.N, self.C, self.H, self.W, self.K, self.R, self.S,
                               self.ph, self.pw, self.dh, self.dw, self.Ho, self.Wo)
        return self.out


cdef class ConvChOp(Op):
    cdef cnp.ndarray wck, bias, alpha
    cdef int act
    cdef int64_t N, C, H, W, K, Kp, R, S, sh, sw, ph, pw, dh, dw, Ho, Wo

    def __init__(self, Py_ssize_t N, tuple in_shape, wck, bias, alpha, int act,
                 Py_ssize_t K, Py_ssize_t R, Py_ssize_t S, Py_ssize_t sh, Py_ssize_t sw,
                 Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw, tuple out_shape):
        """A convolution (in_shape (C, H, W)) or a dense layer (in_shape (F,),
        out_shape (units,))."""
        self.N = N
        self.C = in_shape[0]
        self.H = in_shape[1] if len(in_shape) == 3 else 1
        self.W = in_shape[2] if len(in_shape) == 3 else 1
        self.K, self.R, self.S, self.sh, self.sw = K, R, S, sh, sw
        self.ph, self.pw, self.dh, self.dw = ph, pw, dh, dw
        self.Ho, self.Wo = _osz(self.H, R, sh, ph, dh), _osz(self.W, S, sw, pw, dw)
        self.wck = _arr(wck, "wck", 2)
        self.Kp = self.wck.shape[1]
        self.bias = _vec(bias, "bias", self.Kp)
        self.alpha = _vec(alpha, "alpha", self.Kp) if act == 3 else self.bias
        self.act = _act(act)
        if self.wck.shape[0] != self.C * R * S or self.Kp < K:
            raise ValueError("wck does not match the layer")
        if self.Ho * self.Wo * K != int(np.prod(out_shape)):
            raise ValueError(f"out_shape {out_shape} does not match the layer")
        self.out = np.empty((N,) + out_shape, np.float32)

    cdef object run(self, object x):
        dtnn_infer_conv_ch_f32(<const float *>cnp.PyArray_DATA(x), _f(self.wck), _f(self.bias),
                               _f(self.alpha), self.act, _f(self.out), self.N, self.C, self.H,
                               self.W, self.K, self.Kp, self.R, self.S, self.sh, self.sw,
                               self.ph, self.pw, self.dh, self.dw, self.Ho, self.Wo)
        return self.out


cdef class AffineOp(Op):
    """act(x * scale + shift) per channel, into its own buffer (or in place)."""
    cdef object scale, shift, alpha
    cdef int act
    cdef int64_t N, C, P
    cdef bint inplace

    def __init__(self, Py_ssize_t N, tuple shape, scale, shift, int act, alpha,
                 bint inplace=False):
        self.N, self.C = N, shape[0]
        self.P = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        self.scale = None if scale is None else _arr(scale, "scale", 1)
        self.shift = None if shift is None else _arr(shift, "shift", 1)
        self.alpha = _arr(alpha, "alpha", 1) if act == 3 else None
        self.act = _act(act)
        self.inplace = inplace
        self.out = None if inplace else np.empty((N,) + shape, np.float32)

    cdef object run(self, object x):
        y = x if self.inplace else self.out
        dtnn_infer_affine_act_f32(<const float *>cnp.PyArray_DATA(x), <float *>cnp.PyArray_DATA(y),
                                  self.N, self.C, self.P,
                                  _f(self.scale) if self.scale is not None else NULL,
                                  _f(self.shift) if self.shift is not None else NULL,
                                  self.act, _f(self.alpha) if self.alpha is not None else NULL)
        return y


cdef class MaxPoolOp(Op):
    cdef int64_t N, C, H, W, R, S, sh, sw, ph, pw, Ho, Wo

    def __init__(self, Py_ssize_t N, tuple in_shape, Py_ssize_t R, Py_ssize_t S,
                 Py_ssize_t sh, Py_ssize_t sw, Py_ssize_t ph, Py_ssize_t pw):
        self.N, self.C, self.H, self.W = N, in_shape[0], in_shape[1], in_shape[2]
        self.R, self.S, self.sh, self.sw, self.ph, self.pw = R, S, sh, sw, ph, pw
        self.Ho, self.Wo = (self.H + 2 * ph - R) // sh + 1, (self.W + 2 * pw - S) // sw + 1
        self.out = np.empty((N, self.C, self.Ho, self.Wo), np.float32)

    cdef object run(self, object x):
        dtnn_infer_maxpool_f32(<const float *>cnp.PyArray_DATA(x), _f(self.out), self.N, self.C,
                               self.H, self.W, self.R, self.S, self.sh, self.sw, self.ph,
                               self.pw, self.Ho, self.Wo)
        return self.out


cdef class ReshapeOp(Op):
    """A view of the input with another shape (Flatten): no copy."""
    cdef tuple shape

    def __init__(self, tuple shape):
        self.shape = shape
        self.out = None

    cdef object run(self, object x):
        return x.reshape(self.shape)


cdef class PyOp(Op):
    """A step computed in Python (numpy, BLAS, a conv variant, an unfused layer):
    ``fn(x)`` returns a C-contiguous float32 array."""
    cdef object fn

    def __init__(self, fn):
        self.fn = fn
        self.out = None

    cdef object run(self, object x):
        return self.fn(x)


cdef class BlockOp(Op):
    """Branches (each a list of ops; empty = identity) merged by addition (residual)
    or concatenation along axis 1 (concat) into the block's buffer."""
    cdef list branches
    cdef bint concat

    def __init__(self, list branches, bint concat, out):
        self.branches, self.concat = branches, concat
        self.out = out

    cdef object run(self, object x):
        outs = [run(b, x) for b in self.branches]
        if self.concat:
            np.concatenate(outs, axis=1, out=self.out)
        else:
            np.add(outs[0], outs[1], out=self.out)
        return self.out

