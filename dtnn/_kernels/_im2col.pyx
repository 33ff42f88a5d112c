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
    dtnn_geom_fn,
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


include "_arrays.pxi"


cdef _check_conv_params(Py_ssize_t R, Py_ssize_t S, Py_ssize_t stride_h,
                        Py_ssize_t stride_w, Py_ssize_t pad_h, Py_ssize_t pad_w,
                        Py_ssize_t dil_h, Py_ssize_t dil_w):
    _check_window("kernel", R, S, stride_h, stride_w, pad_h, pad_w)
    if dil_h < 1 or dil_w < 1:
        raise ValueError(f"dilation must be >= 1, got ({dil_h}, {dil_w})")


cdef (Py_ssize_t, Py_ssize_t) _fit(str who, Py_ssize_t H, Py_ssize_t W, Py_ssize_t R,
                                   Py_ssize_t S, Py_ssize_t stride_h, Py_ssize_t stride_w,
                                   Py_ssize_t pad_h, Py_ssize_t pad_w, Py_ssize_t dil_h,
                                   Py_ssize_t dil_w) except *:
    """(Ho, Wo) of an H x W input, or ValueError naming ``who`` if the kernel does not fit."""
    cdef Py_ssize_t Ho = _out_size(H, R, stride_h, pad_h, dil_h)
    cdef Py_ssize_t Wo = _out_size(W, S, stride_w, pad_w, dil_w)
    if Ho < 1 or Wo < 1:
        raise ValueError(
            f"{who}: a {R}x{S} kernel (dilation {dil_h}x{dil_w}, padding "
            f"{pad_h}x{pad_w}) does not fit a {H}x{W} input")
    return Ho, Wo


cdef cnp.ndarray _run(dtnn_geom_fn kernel, cnp.ndarray src, cnp.ndarray dst, Py_ssize_t N,
                      Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t R, Py_ssize_t S,
                      Py_ssize_t stride_h, Py_ssize_t stride_w, Py_ssize_t pad_h,
                      Py_ssize_t pad_w, Py_ssize_t dil_h, Py_ssize_t dil_w, Py_ssize_t Ho,
                      Py_ssize_t Wo):
    """``kernel`` (im2col or col2im) from ``src`` into ``dst``, without the GIL."""
    cdef const float *sp = <const float *>cnp.PyArray_DATA(src)
    cdef float *dp = <float *>cnp.PyArray_DATA(dst)
    with nogil:
        kernel(sp, dp, N, C, H, W, R, S, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w,
               Ho, Wo)
    return dst


def im2col(x, Py_ssize_t R, Py_ssize_t S, Py_ssize_t stride_h, Py_ssize_t stride_w,
           Py_ssize_t pad_h, Py_ssize_t pad_w, Py_ssize_t dil_h, Py_ssize_t dil_w,
           out=None):
    """x float32 (N, C, H, W) -> col float32 (C*R*S, N*Ho*Wo); see twins.im2col."""
    cdef cnp.ndarray xa = _input_f32(x, "x", 4)
    _check_conv_params(R, S, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w)
    cdef Py_ssize_t N = xa.shape[0], C = xa.shape[1], H = xa.shape[2], W = xa.shape[3]
    if H < 1 or W < 1:
        raise ValueError(f"x has an empty spatial size {H}x{W}")
    cdef Py_ssize_t Ho, Wo
    Ho, Wo = _fit("im2col", H, W, R, S, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w)
    cdef cnp.ndarray col = _output_f32(out, (C * R * S, N * Ho * Wo), xa)
    return _run(dtnn_im2col_f32, xa, col, N, C, H, W, R, S, stride_h, stride_w,
                pad_h, pad_w, dil_h, dil_w, Ho, Wo)


def col2im(col, Py_ssize_t N, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W,
           Py_ssize_t R, Py_ssize_t S, Py_ssize_t stride_h, Py_ssize_t stride_w,
           Py_ssize_t pad_h, Py_ssize_t pad_w, Py_ssize_t dil_h, Py_ssize_t dil_w,
           out=None):
    """col float32 (C*R*S, N*Ho*Wo) -> x float32 (N, C, H, W); see twins.col2im."""
    cdef cnp.ndarray ca = _input_f32(col, "col", 2)
    _check_conv_params(R, S, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w)
    if N < 0 or C < 1 or H < 1 or W < 1:
        raise ValueError(f"invalid image shape N={N}, C={C}, H={H}, W={W}")
    cdef Py_ssize_t Ho, Wo
    Ho, Wo = _fit("col2im", H, W, R, S, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w)
    expected = (C * R * S, N * Ho * Wo)
    if (<object>ca).shape != expected:
        raise ValueError(f"col has shape {(<object>ca).shape}, expected {expected}")
    cdef cnp.ndarray x = _output_f32(out, (N, C, H, W), ca)
    return _run(dtnn_col2im_f32, ca, x, N, C, H, W, R, S, stride_h, stride_w,
                pad_h, pad_w, dil_h, dil_w, Ho, Wo)


# --- fused ("implicit im2col") convolution kernels (csrc/im2col.c, im2col_fused.h) ---
include "_isa.pxi"

cdef extern from "im2col_fused.h" nogil:
    int dtnn_fused_isa(int isa)
    int dtnn_fused_compiled(int isa)
    int dtnn_fused_direct(int64_t C, int64_t R, int64_t S, int64_t G, int64_t sw, int64_t Wo)
    int dtnn_fused_live(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R,
                        int64_t S, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                        int64_t dh, int64_t dwl, int64_t Ho, int64_t Wo, int64_t G, int pss)
    int dtnn_fused_pointwise(int64_t R, int64_t S, int64_t sh, int64_t sw, int64_t ph,
                             int64_t pw, int64_t P)
    int64_t dtnn_conv_fwd_ws_floats(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                                    int64_t R, int64_t S, int64_t ph, int64_t pw,
                                    int64_t Ho, int64_t Wo, int64_t G)
    void dtnn_conv_fwd_f32(const float *x, const float *w, const float *bias, float *y,
                           int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                           int64_t R, int64_t S, int64_t sh, int64_t sw,
                           int64_t ph, int64_t pw, int64_t dh, int64_t dwl,
                           int64_t Ho, int64_t Wo, int64_t G,
                           int64_t w_gs, int64_t w_so, int64_t w_si, int64_t w_st, int isa,
                           float *ws)
    int64_t dtnn_conv_bww_ws_floats(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                                    int64_t R, int64_t S, int64_t ph, int64_t pw,
                                    int64_t Ho, int64_t Wo, int64_t G)
    void dtnn_conv_bww_f32(const float *x, const float *dy, float *dw,
                           int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                           int64_t R, int64_t S, int64_t sh, int64_t sw,
                           int64_t ph, int64_t pw, int64_t dh, int64_t dwl,
                           int64_t Ho, int64_t Wo, int64_t G, int isa, float *ws,
                           float *db)

#: largest padded plane block the kernels index with 32-bit offsets
cdef Py_ssize_t _MAX_BLOCK = 2 ** 31 - 1


#: ISA names of the fused kernels' paths (csrc/dtnn_isa.h levels)
FUSED_PATHS = {"avx512": 2, "avx2": 1}


cdef int _isa_code(object isa) except -2:
    if isa is None:
        return -1
    if isa not in FUSED_PATHS:
        raise ValueError(f"isa must be one of {sorted(FUSED_PATHS)} or None, got {isa!r}")
    return FUSED_PATHS[isa]


def fused_isa(isa=None):
    """The path ('avx512' or 'avx2') a request runs on (None: the active level), or
    None when the fused kernels cannot run here (no AVX2, or capped by DTNN_ISA)."""
    cdef int level = dtnn_fused_isa(_isa_code(isa))
    for name, code in FUSED_PATHS.items():
        if code == level:
            return name
    return None


def fused_compiled_paths():
    """The fused kernels' ISA paths compiled into this build (whether or not they run here)."""
    return [name for name, code in FUSED_PATHS.items() if dtnn_fused_compiled(code)]


def fused_direct(Py_ssize_t C, Py_ssize_t R, Py_ssize_t S, Py_ssize_t groups,
                 Py_ssize_t stride_w, Py_ssize_t Wo):
    """True if a convolution of this shape runs the fused kernels' direct path for short
    reductions (first layers: (C/groups)*R*S <= 32, stride_w 1) in its forward and
    backward-weights: output pixels in the vector lanes, NCHW in and out, no transposes."""
    return bool(dtnn_fused_direct(C, R, S, groups, stride_w, Wo))


def fused_pointwise(Py_ssize_t R, Py_ssize_t S, Py_ssize_t stride_h, Py_ssize_t stride_w,
                    Py_ssize_t pad_h, Py_ssize_t pad_w, Py_ssize_t Ho, Py_ssize_t Wo):
    """True if a convolution of this shape runs the fused kernels' pointwise
    backward-weights (1x1, stride 1, no padding, Ho*Wo >= 256 pixels): dy and x read in
    place, and ``fused_backward_weights(..., db=...)`` sums
    the bias gradient in the same sweep."""
    return bool(dtnn_fused_pointwise(R, S, stride_h, stride_w, pad_h, pad_w, Ho * Wo))


def fused_live(Py_ssize_t N, Py_ssize_t C, Py_ssize_t H, Py_ssize_t W, Py_ssize_t K,
               Py_ssize_t R, Py_ssize_t S, Py_ssize_t stride_h, Py_ssize_t stride_w,
               Py_ssize_t pad_h, Py_ssize_t pad_w, Py_ssize_t dil_h, Py_ssize_t dil_w,
               Py_ssize_t groups, str pass_="forward"):
    """True if this pass ("forward", "backward_data" of a stride-1 convolution, or
    "backward_weights") of the compiled fused kernels runs live-tap blocks: blocks of
    at least 6 small images with the images innermost, where the products that read
    padding are skipped (on where >= DTNN_FUSED_LIVE_MIN percent, default 15, of the
    products read padding: 3x3 convolutions on 7x7 and smaller images).  Same results
    as the channel-major blocks up to rounding (the reduction runs tap-major)."""
    cdef Py_ssize_t Ho, Wo
    _check_groups(C, K, groups)
    Ho, Wo = _fused_fit("fused_live: ", H, W, R, S, stride_h, stride_w, pad_h, pad_w,
                        dil_h, dil_w)
    if pass_ == "forward":
        return bool(dtnn_fused_live(N, C, H, W, K, R, S, stride_h, stride_w, pad_h, pad_w,
                                    dil_h, dil_w, Ho, Wo, groups, 0))
    if pass_ == "backward_data":
        if stride_h != 1 or stride_w != 1:
            return False
        return bool(dtnn_fused_live(N, K, Ho, Wo, C, R, S, 1, 1, dil_h * (R - 1) - pad_h,
                                    dil_w * (S - 1) - pad_w, dil_h, dil_w, H, W, groups, 0))
    if pass_ == "backward_weights":
        return bool(dtnn_fused_live(N, C, H, W, K, R, S, stride_h, stride_w, pad_h, pad_w,
                                    dil_h, dil_w, Ho, Wo, groups, 1))
    raise ValueError(f"pass_ must be 'forward', 'backward_data' or 'backward_weights', "
                     f"got {pass_!r}")


def fused_supported():
    """True if the fused kernels run on this CPU at the active ISA level (AVX2 or AVX-512)."""
    return dtnn_fused_isa(-1) >= 0


cdef int _require_fused(object isa) except -2:
    cdef int code = _isa_code(isa)
    if dtnn_fused_isa(code) < 0:
        if isa is None:
            raise RuntimeError("fused convolution kernels need an x86-64 CPU with AVX2 + FMA "
                               "(or DTNN_ISA caps them off)")
        raise RuntimeError(f"the fused kernels' {isa} path cannot run on this CPU")
    return code


cdef _check_groups(Py_ssize_t C, Py_ssize_t K, Py_ssize_t groups):
    if groups < 1 or C % groups or K % groups:
        raise ValueError(f"groups={groups} must divide C={C} and K={K}")


cdef cnp.ndarray _scratch(object workspace, Py_ssize_t n):
    cdef object buf
    if n < 1:
        n = 1
    if workspace is not None:
        buf = workspace(n)
        if (isinstance(buf, np.ndarray) and buf.dtype == _F32 and buf.ndim == 1
                and buf.flags.c_contiguous and buf.flags.writeable and buf.shape[0] >= n):
            return buf
    return np.empty(n, dtype=np.float32)


cdef (Py_ssize_t, Py_ssize_t) _fused_fit(str prefix, Py_ssize_t H, Py_ssize_t W,
                                         Py_ssize_t R, Py_ssize_t S, Py_ssize_t stride_h,
                                         Py_ssize_t stride_w, Py_ssize_t pad_h,
                                         Py_ssize_t pad_w, Py_ssize_t dil_h,
                                         Py_ssize_t dil_w) except *:
    """(Ho, Wo) of a fused convolution after checking its parameters; ValueError
    "<prefix>the kernel does not fit ..." for an empty input or output."""
    _check_conv_params(R, S, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w)
    cdef Py_ssize_t Ho = _out_size(H, R, stride_h, pad_h, dil_h)
    cdef Py_ssize_t Wo = _out_size(W, S, stride_w, pad_w, dil_w)
    if H < 1 or W < 1 or Ho < 1 or Wo < 1:
        raise ValueError(f"{prefix}the kernel does not fit a {H}x{W} input")
    return Ho, Wo


cdef _check_fits(Py_ssize_t N, Py_ssize_t H, Py_ssize_t W, Py_ssize_t pad_h,
                 Py_ssize_t pad_w):
    if (H + 2 * pad_h) * (W + 2 * pad_w) * min(N, 4096) > _MAX_BLOCK:
        raise ValueError(f"images of {H}x{W} are too large for the fused kernels")


cdef _conv_fwd(cnp.ndarray xa, const float *wp, object bias, cnp.ndarray ya,
               Py_ssize_t K, Py_ssize_t R, Py_ssize_t S, Py_ssize_t sh, Py_ssize_t sw,
               Py_ssize_t ph, Py_ssize_t pw, Py_ssize_t dh, Py_ssize_t dw, Py_ssize_t G,
               Py_ssize_t w_gs, Py_ssize_t w_so, Py_ssize_t w_si, Py_ssize_t w_st,
               object workspace, int isa):
    cdef Py_ssize_t N = xa.shape[0], C = xa.shape[1], H = xa.shape[2], W = xa.shape[3]
    cdef Py_ssize_t Ho = ya.shape[2], Wo = ya.shape[3]
    cdef cnp.ndarray ba
    cdef const float *bp = NULL
    if bias is not None:
        ba = _input_f32(bias, "bias", 1)
        if ba.shape[0] != K:
            raise ValueError(f"bias has shape {(<object>ba).shape}, expected ({K},)")
        bp = <const float *>cnp.PyArray_DATA(ba)
    _check_fits(N, H, W, ph, pw)
    cdef cnp.ndarray ws = _scratch(workspace, dtnn_conv_fwd_ws_floats(
        N, C, H, W, K, R, S, ph, pw, Ho, Wo, G))
    cdef const float *xp = <const float *>cnp.PyArray_DATA(xa)
    cdef float *yp = <float *>cnp.PyArray_DATA(ya)
    cdef float *wsp = <float *>cnp.PyArray_DATA(ws)
    with nogil:
        dtnn_conv_fwd_f32(xp, wp, bp, yp, N, C, H, W, K, R, S, sh, sw, ph, pw, dh, dw,
                          Ho, Wo, G, w_gs, w_so, w_si, w_st, isa, wsp)
    return ya


def fused_forward(x, w, bias, Py_ssize_t stride_h, Py_ssize_t stride_w, Py_ssize_t pad_h,
                  Py_ssize_t pad_w, Py_ssize_t dil_h, Py_ssize_t dil_w, Py_ssize_t groups,
                  out=None, workspace=None, isa=None):
    """y = conv(x, w) + bias for x (N, C, H, W), w (K, C/groups, R, S), bias (K,) or
    None -> y (N, K, Ho, Wo), any stride, padding, dilation and groups.
    ``workspace(n)`` (optional) returns >= n float32 of scratch; ``isa`` ('avx512',
    'avx2' or None for the active level) picks the path.  Same result as
    ``dtnn.conv.im2col_fused.fused_forward``."""
    cdef int code = _require_fused(isa)
    cdef cnp.ndarray xa = _input_f32(x, "x", 4)
    cdef cnp.ndarray wa = _input_f32(w, "w", 4)
    cdef Py_ssize_t N = xa.shape[0], C = xa.shape[1], H = xa.shape[2], W = xa.shape[3]
    cdef Py_ssize_t K = wa.shape[0], R = wa.shape[2], S = wa.shape[3]
    _check_groups(C, K, groups)
    if wa.shape[1] * groups != C:
        raise ValueError(f"w has shape {(<object>wa).shape}, expected (K, {C // groups}, R, S)")
    cdef Py_ssize_t Ho, Wo
    Ho, Wo = _fused_fit("fused_forward: ", H, W, R, S, stride_h, stride_w, pad_h, pad_w,
                        dil_h, dil_w)
    cdef Py_ssize_t Cg = C // groups, Kg = K // groups, T = R * S
    cdef cnp.ndarray ya = _output_f32(out, (N, K, Ho, Wo), xa)
    if np.may_share_memory(ya, wa):
        raise ValueError("out must not overlap the input array")
    return _conv_fwd(xa, <const float *>cnp.PyArray_DATA(wa), bias, ya, K, R, S,
                     stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, groups,
                     Kg * Cg * T, Cg * T, T, 1, workspace, code)


def fused_backward_data(dy, w, Py_ssize_t H, Py_ssize_t W, Py_ssize_t pad_h,
                        Py_ssize_t pad_w, Py_ssize_t dil_h, Py_ssize_t dil_w,
                        Py_ssize_t groups, out=None, workspace=None, isa=None):
    """dx (N, C, H, W) of a stride-1 convolution from dy (N, K, Ho, Wo) and w
    (K, C/groups, R, S); needs pad <= dil*(kernel-1) in both dimensions (it runs the
    forward kernel on dy with the flipped filters).  Same result as
    ``dtnn.conv.im2col_fused.fused_backward_data``."""
    cdef int code = _require_fused(isa)
    cdef cnp.ndarray da = _input_f32(dy, "dy", 4)
    cdef cnp.ndarray wa = _input_f32(w, "w", 4)
    cdef Py_ssize_t N = da.shape[0], K = da.shape[1], Ho = da.shape[2], Wo = da.shape[3]
    cdef Py_ssize_t Cg = wa.shape[1], R = wa.shape[2], S = wa.shape[3]
    cdef Py_ssize_t C = Cg * groups, T = R * S
    if wa.shape[0] != K:
        raise ValueError(f"w has {wa.shape[0]} filters but dy has {K} channels")
    _check_groups(C, K, groups)
    _check_conv_params(R, S, 1, 1, pad_h, pad_w, dil_h, dil_w)
    cdef Py_ssize_t qh = dil_h * (R - 1) - pad_h, qw = dil_w * (S - 1) - pad_w
    if qh < 0 or qw < 0:
        raise ValueError(f"fused_backward_data needs pad <= dil*(kernel-1), got pad "
                         f"({pad_h}, {pad_w}) for a {R}x{S} kernel, dilation "
                         f"({dil_h}, {dil_w})")
    if (H < 1 or W < 1 or _out_size(H, R, 1, pad_h, dil_h) != Ho
            or _out_size(W, S, 1, pad_w, dil_w) != Wo):
        raise ValueError(f"an input of {H}x{W} does not give dy's {Ho}x{Wo}")
    cdef Py_ssize_t Kg = K // groups
    cdef cnp.ndarray xa = _output_f32(out, (N, C, H, W), da)
    if np.may_share_memory(xa, wa):
        raise ValueError("out must not overlap the input array")
    # dx[c] = sum_k conv(dy[k], w[k, c] rotated by 180 degrees), padding dil*(k-1) - pad:
    # the forward kernel with in/out channels swapped and the taps read backwards
    return _conv_fwd(da, <const float *>cnp.PyArray_DATA(wa) + (T - 1), None, xa, C, R, S,
                     1, 1, qh, qw, dil_h, dil_w, groups, Kg * Cg * T, T, Cg * T, -1,
                     workspace, code)


def fused_backward_weights(dy, x, Py_ssize_t R, Py_ssize_t S, Py_ssize_t stride_h,
                           Py_ssize_t stride_w, Py_ssize_t pad_h, Py_ssize_t pad_w,
                           Py_ssize_t dil_h, Py_ssize_t dil_w, Py_ssize_t groups, out=None,
                           workspace=None, isa=None, db=None):
    """dw (K, C/groups, R, S) of any convolution from dy (N, K, Ho, Wo) and x (N, C, H, W)
    (``out`` is overwritten).  ``db``: a contiguous float32 (K,) array overwritten with
    the bias gradient (dy summed over images and pixels), only where ``fused_pointwise``
    holds (the kernel sums it in the same sweep).  Same result as
    ``dtnn.conv.im2col_fused.fused_backward_weights``."""
    cdef int code = _require_fused(isa)
    cdef cnp.ndarray da = _input_f32(dy, "dy", 4)
    cdef cnp.ndarray xa = _input_f32(x, "x", 4)
    cdef Py_ssize_t N = xa.shape[0], C = xa.shape[1], H = xa.shape[2], W = xa.shape[3]
    cdef Py_ssize_t K = da.shape[1]
    _check_groups(C, K, groups)
    cdef Py_ssize_t Ho, Wo
    Ho, Wo = _fused_fit("", H, W, R, S, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w)
    if (<object>da).shape != (N, K, Ho, Wo):
        raise ValueError(f"dy has shape {(<object>da).shape}, expected {(N, K, Ho, Wo)}")
    _check_fits(N, H, W, pad_h, pad_w)
    cdef cnp.ndarray dwa = _output_f32(out, (K, C // groups, R, S), xa)
    if np.may_share_memory(dwa, da):
        raise ValueError("out must not overlap the input array")
    cdef float *dbp = NULL
    if db is not None:
        if not dtnn_fused_pointwise(R, S, stride_h, stride_w, pad_h, pad_w, Ho * Wo):
            raise ValueError("db is summed only by the pointwise kernel (1x1, stride 1, "
                             "no padding, see fused_pointwise)")
        if (not isinstance(db, np.ndarray) or db.dtype != _F32 or db.shape != (K,)
                or not db.flags.c_contiguous or not db.flags.writeable):
            raise ValueError(f"db must be a writeable contiguous float32 array of shape "
                             f"({K},)")
        if np.may_share_memory(db, da) or np.may_share_memory(db, xa) or \
                np.may_share_memory(db, dwa):
            raise ValueError("db must not overlap the inputs or out")
        dbp = <float *>cnp.PyArray_DATA(db)
    cdef cnp.ndarray ws = _scratch(workspace, dtnn_conv_bww_ws_floats(
        N, C, H, W, K, R, S, pad_h, pad_w, Ho, Wo, groups))
    cdef const float *dp = <const float *>cnp.PyArray_DATA(da)
    cdef const float *xp = <const float *>cnp.PyArray_DATA(xa)
    cdef float *op = <float *>cnp.PyArray_DATA(dwa)
    cdef float *wsp = <float *>cnp.PyArray_DATA(ws)
    with nogil:
        dtnn_conv_bww_f32(xp, dp, op, N, C, H, W, K, R, S, stride_h, stride_w,
                          pad_h, pad_w, dil_h, dil_w, Ho, Wo, groups, code, wsp, dbp)
    return dwa


def isa_paths():
    """Kernel name -> ISA paths compiled into this module ('generic': the baseline build)."""
    fused = fused_compiled_paths()
    return {"im2col": ["generic"], "col2im": ["generic"], "fused_forward": fused,
            "fused_backward_data": fused, "fused_backward_weights": fused}
