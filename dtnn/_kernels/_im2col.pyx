# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, embedsignature=True
"""Compiled im2col / col2im (C kernels in csrc/im2col.c).

Same signatures and results as ``dtnn._kernels.twins.im2col`` / ``col2im`` (see the
contract in that module).  This wrapper only validates its arguments and hands
pointers to C; the C call runs without the GIL.
"""
import numpy as np

cimport numpy as cnp
from libc.stdint cimport int64_t

from dtnn._kernels._ckernels cimport (
    dtnn_col2im_f32,
    dtnn_im2col_f32,
    dtnn_openmp_enabled,
    dtnn_openmp_max_threads,
)

cnp.import_array()

cdef object _F32 = np.dtype(np.float32)


def openmp_enabled():
    """True if the kernels were compiled with OpenMP."""
    return bool(dtnn_openmp_enabled())


def openmp_max_threads():
    """Threads an OpenMP kernel would use now (1 without OpenMP)."""
    return int(dtnn_openmp_max_threads())


cdef Py_ssize_t _out_size(Py_ssize_t n, Py_ssize_t k, Py_ssize_t stride,
                          Py_ssize_t pad, Py_ssize_t dil):
    # floor division on a possibly negative numerator: 0 means "no output"
    cdef Py_ssize_t num = n + 2 * pad - dil * (k - 1) - 1
    if num < 0:
        return 0
    return num // stride + 1


cdef _check_conv_params(Py_ssize_t R, Py_ssize_t S, Py_ssize_t stride_h,
                        Py_ssize_t stride_w, Py_ssize_t pad_h, Py_ssize_t pad_w,
                        Py_ssize_t dil_h, Py_ssize_t dil_w):
    if R < 1 or S < 1:
        raise ValueError(f"kernel size must be >= 1, got R={R}, S={S}")
    if stride_h < 1 or stride_w < 1:
        raise ValueError(f"stride must be >= 1, got ({stride_h}, {stride_w})")
    if pad_h < 0 or pad_w < 0:
        raise ValueError(f"padding must be >= 0, got ({pad_h}, {pad_w})")
    if dil_h < 1 or dil_w < 1:
        raise ValueError(f"dilation must be >= 1, got ({dil_h}, {dil_w})")


cdef cnp.ndarray _input_f32(object a, str name, int ndim):
    if not isinstance(a, np.ndarray):
        raise ValueError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    if a.dtype != _F32:
        raise ValueError(f"{name} must be float32, got {a.dtype}")
    if a.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D, got shape {a.shape}")
    if not a.flags.c_contiguous:
        a = np.ascontiguousarray(a)
    return a


cdef cnp.ndarray _output_f32(object out, tuple shape, object src):
    if out is None:
        return np.empty(shape, dtype=np.float32)
    if not isinstance(out, np.ndarray):
        raise ValueError(f"out must be a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != _F32:
        raise ValueError(f"out must be float32, got {out.dtype}")
    if out.shape != shape:
        raise ValueError(f"out has shape {out.shape}, expected {shape}")
    if not out.flags.c_contiguous:
        raise ValueError("out must be C-contiguous")
    if not out.flags.writeable:
        raise ValueError("out is read-only")
    if np.may_share_memory(out, src):
        raise ValueError("out must not overlap the input array")
    return out


def im2col(x, Py_ssize_t R, Py_ssize_t S, Py_ssize_t stride_h, Py_ssize_t stride_w,
           Py_ssize_t pad_h, Py_ssize_t pad_w, Py_ssize_t dil_h, Py_ssize_t dil_w,
           out=None):
    """x float32 (N, C, H, W) -> col float32 (C*R*S, N*Ho*Wo); see twins.im2col."""
    cdef cnp.ndarray xa = _input_f32(x, "x", 4)
    _check_conv_params(R, S, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w)
    cdef Py_ssize_t N = xa.shape[0], C = xa.shape[1], H = xa.shape[2], W = xa.shape[3]
    if H < 1 or W < 1:
        raise ValueError(f"x has an empty spatial size {H}x{W}")
    cdef Py_ssize_t Ho = _out_size(H, R, stride_h, pad_h, dil_h)
    cdef Py_ssize_t Wo = _out_size(W, S, stride_w, pad_w, dil_w)
    if Ho < 1 or Wo < 1:
        raise ValueError(
            f"im2col: a {R}x{S} kernel (dilation {dil_h}x{dil_w}, padding "
            f"{pad_h}x{pad_w}) does not fit a {H}x{W} input")
    cdef cnp.ndarray col = _output_f32(out, (C * R * S, N * Ho * Wo), xa)
    cdef const float *xp = <const float *>cnp.PyArray_DATA(xa)
    cdef float *cp = <float *>cnp.PyArray_DATA(col)
    with nogil:
        dtnn_im2col_f32(xp, cp, N, C, H, W, R, S, stride_h, stride_w,
                        pad_h, pad_w, dil_h, dil_w, Ho, Wo)
    return col


def col2im(col, Py_ssize_t N, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
           Py_ssize_t R, Py_ssize_t S, Py_ssize_t stride_h, Py_ssize_t stride_w,
           Py_ssize_t pad_h, Py_ssize_t pad_w, Py_ssize_t dil_h, Py_ssize_t dil_w,
           out=None):
    """col float32 (C*R*S, N*Ho*Wo) -> x float32 (N, C, H, W); see twins.col2im."""
    cdef cnp.ndarray ca = _input_f32(col, "col", 2)
    _check_conv_params(R, S, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w)
    if N < 0 or C < 1 or H < 1 or W < 1:
        raise ValueError(f"invalid image shape N={N}, C={C}, H={H}, W={W}")
    cdef Py_ssize_t Ho = _out_size(H, R, stride_h, pad_h, dil_h)
    cdef Py_ssize_t Wo = _out_size(W, S, stride_w, pad_w, dil_w)
    if Ho < 1 or Wo < 1:
        raise ValueError(
            f"col2im: a {R}x{S} kernel (dilation {dil_h}x{dil_w}, padding "
            f"{pad_h}x{pad_w}) does not fit a {H}x{W} input")
    expected = (C * R * S, N * Ho * Wo)
    if (<object>ca).shape != expected:
        raise ValueError(f"col has shape {(<object>ca).shape}, expected {expected}")
    cdef cnp.ndarray x = _output_f32(out, (N, C, H, W), ca)
    cdef const float *cp = <const float *>cnp.PyArray_DATA(ca)
    cdef float *xp = <float *>cnp.PyArray_DATA(x)
    with nogil:
        dtnn_col2im_f32(cp, xp, N, C, H, W, R, S, stride_h, stride_w,
                        pad_h, pad_w, dil_h, dil_w, Ho, Wo)
    return x
