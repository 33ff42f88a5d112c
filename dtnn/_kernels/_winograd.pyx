# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled Winograd F(2x2,3x3) / F(4x4,3x3) transforms (C in csrc/winograd.c).

Same contract and results as the numpy twins in ``dtnn.conv.kernels``
(``winograd_filter`` / ``winograd_input`` / ``winograd_output`` and, for
backward-weights, ``winograd_dy`` / ``winograd_dfilter``); see csrc/winograd.h
for the layouts.
"""
import numpy as np

cimport numpy as cnp
from libc.stdint cimport int64_t

from dtnn._kernels._convk cimport (dtnn_wino_dfilter_f32, dtnn_wino_dy_f32,
                                   dtnn_wino_filter_f32, dtnn_wino_input_f32,
                                   dtnn_wino_output_f32)

cnp.import_array()

include "_isa.pxi"


include "_arrays.pxi"


cdef cnp.ndarray _out(object out, tuple shape):
    if out is None:
        return np.empty(shape, np.float32)
    if (not isinstance(out, np.ndarray) or out.dtype != np.float32 or out.shape != shape
            or not out.flags.c_contiguous or not out.flags.writeable):
        raise ValueError(f"out must be a writeable C-contiguous float32 array {shape}")
    return out


cdef bint _rows_ok(cnp.ndarray a):
    """3-D float32 whose last two axes are C-contiguous; axis 0 may be padded.  (The
    stride of an axis of length 1 is never used, and numpy may set it to anything.)"""
    return (a.dtype == np.float32 and a.ndim == 3
            and (a.shape[2] <= 1 or a.strides[2] == 4)
            and (a.shape[1] <= 1 or a.strides[1] == 4 * a.shape[2])
            and a.strides[0] % 4 == 0 and a.strides[0] >= 4 * a.shape[1] * a.shape[2])


cdef cnp.ndarray _out_rows(object out, tuple shape):
    if out is None:
        return np.empty(shape, np.float32)
    if (not isinstance(out, np.ndarray) or out.shape != shape or not _rows_ok(out)
            or not out.flags.writeable):
        raise ValueError(f"out must be a writeable float32 array {shape} with C-contiguous "
                         "rows (axis 0 may be padded)")
    return out


cdef int _scratch_ok(int rc, str who) except -1:
    """MemoryError naming ``who`` if a transform's C call (``rc``) failed to allocate."""
    if rc != 0:
        raise MemoryError(f"{who}: scratch allocation failed")
    return 0


cdef _check_m(Py_ssize_t m):
    if m != 2 and m != 4:
        raise ValueError(f"tile size m must be 2 or 4, got {m}")


def winograd_filter(w, Py_ssize_t m, bint flip=False, out=None):
    """w (K, C, 3, 3) -> U ((m+2)**2, K, C); flip: of the 180°-rotated filters.
    ``out``'s rows must be C-contiguous; its axis 0 may be padded."""
    _check_m(m)
    cdef cnp.ndarray wa = _f32c(w, "w", 4)
    if wa.shape[2] != 3 or wa.shape[3] != 3:
        raise ValueError("w must be (K, C, 3, 3)")
    cdef Py_ssize_t K = wa.shape[0], C = wa.shape[1], a = m + 2
    cdef cnp.ndarray U = _out_rows(out, (a * a, K, C))
    cdef const float *wp = <const float *>cnp.PyArray_DATA(wa)
    cdef float *up = <float *>cnp.PyArray_DATA(U)
    cdef int64_t ups = U.strides[0] // 4
    cdef int fl = 1 if flip else 0
    with nogil:
        dtnn_wino_filter_f32(wp, up, ups, K, C, m, fl)
    return U


def winograd_input(x, Py_ssize_t pad_h, Py_ssize_t pad_w, Py_ssize_t m,
                   Py_ssize_t th, Py_ssize_t tw, out=None):
    """x (nb, C, H, W) -> V ((m+2)**2, C, nb*th*tw), tile column (j*th + i)*nb + n."""
    _check_m(m)
    cdef cnp.ndarray xa = _f32c(x, "x", 4)
    cdef Py_ssize_t nb = xa.shape[0], C = xa.shape[1], H = xa.shape[2], W = xa.shape[3]
    cdef Py_ssize_t a = m + 2
    if (pad_h < 0 or pad_w < 0 or (th - 1) * m + a < H + 2 * pad_h
            or (tw - 1) * m + a < W + 2 * pad_w):
        raise ValueError("the tiles must cover the padded image")
    cdef cnp.ndarray V = _out_rows(out, (a * a, C, nb * th * tw))
    cdef const float *xp = <const float *>cnp.PyArray_DATA(xa)
    cdef float *vp = <float *>cnp.PyArray_DATA(V)
    cdef int64_t vps = V.strides[0] // 4
    cdef int rc
    with nogil:
        rc = dtnn_wino_input_f32(xp, vp, vps, nb, C, H, W, pad_h, pad_w, m, th, tw)
    _scratch_ok(rc, "winograd_input")
    return V


def winograd_output(M, bias, Py_ssize_t nb, Py_ssize_t Ho, Py_ssize_t Wo, Py_ssize_t m,
                    Py_ssize_t th, Py_ssize_t tw, out=None):
    """M ((m+2)**2, K, nb*th*tw) -> y (nb, K, Ho, Wo) (+ bias (K,) when not None).
    M's rows must be C-contiguous; its axis 0 may be padded (else it is copied)."""
    _check_m(m)
    cdef cnp.ndarray Ma = M if isinstance(M, np.ndarray) else None
    if Ma is None or not _rows_ok(Ma):
        Ma = _f32c(M, "M", 3)
    cdef Py_ssize_t K = Ma.shape[1]
    if Ma.shape[0] != (m + 2) * (m + 2) or Ma.shape[2] != nb * th * tw:
        raise ValueError(f"M has shape {M.shape}, inconsistent with m={m}, tiles={nb*th*tw}")
    if th * m < Ho or tw * m < Wo:
        raise ValueError("the tiles must cover the output")
    cdef cnp.ndarray ba
    cdef const float *bp = NULL
    if bias is not None:
        ba = _f32c(bias, "bias", 1)
        if ba.shape[0] != K:
            raise ValueError("bias must have K entries")
        bp = <const float *>cnp.PyArray_DATA(ba)
    cdef cnp.ndarray y = _out(out, (nb, K, Ho, Wo))
    cdef const float *mp = <const float *>cnp.PyArray_DATA(Ma)
    cdef int64_t mps = Ma.strides[0] // 4
    cdef float *yp = <float *>cnp.PyArray_DATA(y)
    cdef int rc
    with nogil:
        rc = dtnn_wino_output_f32(mp, mps, yp, bp, nb, K, Ho, Wo, m, th, tw)
    _scratch_ok(rc, "winograd_output")
    return y


def winograd_dy(dy, Py_ssize_t m, Py_ssize_t th, Py_ssize_t tw, out=None):
    """dy (nb, K, Ho, Wo) -> D ((m+2)**2, K, nb*th*tw) = A dy A^T per m x m tile (zero
    past Ho / Wo), tile column (j*th + i)*nb + n.  ``out``'s axis 0 may be padded."""
    _check_m(m)
    cdef cnp.ndarray da = _f32c(dy, "dy", 4)
    cdef Py_ssize_t nb = da.shape[0], K = da.shape[1], Ho = da.shape[2], Wo = da.shape[3]
    cdef Py_ssize_t a = m + 2
    if th * m < Ho or tw * m < Wo:
        raise ValueError("the tiles must cover the output")
    cdef cnp.ndarray D = _out_rows(out, (a * a, K, nb * th * tw))
    cdef const float *dp = <const float *>cnp.PyArray_DATA(da)
    cdef float *Dp = <float *>cnp.PyArray_DATA(D)
    cdef int64_t dps = D.strides[0] // 4
    cdef int rc
    with nogil:
        rc = dtnn_wino_dy_f32(dp, Dp, dps, nb, K, Ho, Wo, m, th, tw)
    _scratch_ok(rc, "winograd_dy")
    return D


def winograd_dfilter(dU, Py_ssize_t m, bint accumulate=False, out=None):
    """dU ((m+2)**2, K, C) -> dw (K, C, 3, 3) = G^T dU G per (k, c); ``accumulate``:
    add into ``out`` instead of overwriting it.  dU's axis 0 may be padded."""
    _check_m(m)
    cdef cnp.ndarray Ua = dU if isinstance(dU, np.ndarray) else None
    if Ua is None or not _rows_ok(Ua):
        Ua = _f32c(dU, "dU", 3)
    if Ua.shape[0] != (m + 2) * (m + 2):
        raise ValueError(f"dU has shape {dU.shape}, inconsistent with m={m}")
    if accumulate and out is None:
        raise ValueError("accumulate needs out")
    cdef Py_ssize_t K = Ua.shape[1], C = Ua.shape[2]
    cdef cnp.ndarray dw = _out(out, (K, C, 3, 3))
    cdef const float *up = <const float *>cnp.PyArray_DATA(Ua)
    cdef int64_t ups = Ua.strides[0] // 4
    cdef float *wp = <float *>cnp.PyArray_DATA(dw)
    cdef int acc = 1 if accumulate else 0
    with nogil:
        dtnn_wino_dfilter_f32(up, ups, wp, K, C, m, acc)
    return dw


def isa_paths():
    """Kernel name -> ISA paths compiled in: the transforms' lane (de)interleaving has an
    AVX2 path (csrc/winograd.c), the rest is the baseline build."""
    names = ("winograd_filter", "winograd_input", "winograd_output", "winograd_dy",
             "winograd_dfilter")
    return {n: ["avx2", "generic"] for n in names}
