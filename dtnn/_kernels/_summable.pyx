# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, embedsignature=True
"""Compiled fused kernels of the summable compressors: PowerSGD passes batched over a
unit's matrices (C in csrc/lowrank.c) and random-k's one-pass encode (csrc/randomk.c).

Same signatures and maths as the numpy twins in ``dtnn.compress.lowrank_twins``,
which document the contract (the sums run in a different order: the results agree to
rounding).  ``shape`` is an int64 array of (rows, cols, rank) per matrix; offsets are
int64 arrays of element offsets.  Every matrix is checked to lie inside its vector and
P / Q to have the concatenated sizes, then C runs without the GIL.
"""
import numpy as np

cimport numpy as cnp
from libc.stdint cimport int32_t, int64_t

cnp.import_array()

cdef extern from "lowrank.h" nogil:
    int dtnn_lr_encode(float *m, const int64_t *m_off, const float *g, const int64_t *g_off,
                       int64_t n, const int64_t *rows, const int64_t *cols,
                       const int64_t *ranks, const float *q, float *p)
    void dtnn_lr_orthonormalize(float *p, int64_t n, const int64_t *rows,
                                const int64_t *ranks, float eps)
    int dtnn_lr_round2(float *m, const int64_t *m_off, int64_t n, const int64_t *rows,
                       const int64_t *cols, const int64_t *ranks, const float *p, float *q,
                       int ef)
    int dtnn_lr_decode(float *out, const int64_t *out_off, int64_t n, const int64_t *rows,
                       const int64_t *cols, const int64_t *ranks, const float *p,
                       const float *q, float alpha)


cdef cnp.ndarray _f32(object a, str name, bint writable):
    if not isinstance(a, np.ndarray):
        raise ValueError(f"{name} must be a numpy.ndarray, got {type(a).__name__}")
    cdef cnp.ndarray arr = <cnp.ndarray>a
    if arr.dtype != np.float32:
        raise ValueError(f"{name} must be float32, got {arr.dtype}")
    if not cnp.PyArray_IS_C_CONTIGUOUS(arr):
        raise ValueError(f"{name} must be C-contiguous")
    if writable and not cnp.PyArray_ISWRITEABLE(arr):
        raise ValueError(f"{name} is read-only")
    return arr


cdef cnp.ndarray _i64(object a, str name, int64_t n):
    if not isinstance(a, np.ndarray) or a.dtype != np.int64 or a.ndim != 1 \
            or a.shape[0] != n or not a.flags.c_contiguous:
        raise ValueError(f"{name} must be a C-contiguous int64 vector of {n} elements")
    return <cnp.ndarray>a


cdef class _Shape:
    """A unit's rows, cols and ranks (int64 vectors of n) and their data pointers."""
    cdef cnp.ndarray rows, cols, ranks
    cdef int64_t n
    cdef int64_t *rp
    cdef int64_t *cp
    cdef int64_t *kp


cdef _Shape _shape(object shape):
    if not isinstance(shape, np.ndarray) or shape.dtype != np.int64 or shape.ndim != 2 \
            or shape.shape[1] != 3:
        raise ValueError("shape must be an int64 array of (rows, cols, rank) rows")
    cdef cnp.ndarray s = np.ascontiguousarray(shape.T)
    if shape.shape[0] and (s.min() < 1):
        raise ValueError("shape: rows, cols and rank must be >= 1")
    cdef _Shape u = _Shape.__new__(_Shape)
    u.rows, u.cols, u.ranks = s[0].copy(), s[1].copy(), s[2].copy()
    u.n = u.rows.shape[0]
    u.rp = <int64_t *>cnp.PyArray_DATA(u.rows)
    u.cp = <int64_t *>cnp.PyArray_DATA(u.cols)
    u.kp = <int64_t *>cnp.PyArray_DATA(u.ranks)
    return u


cdef cnp.ndarray _placed(cnp.ndarray vec, str name, object off, _Shape u):
    """``off`` (``<name>_off``) checked, and every matrix inside ``vec``: the offsets."""
    cdef cnp.ndarray o = _i64(off, name + "_off", u.n)
    cdef int64_t i, size = cnp.PyArray_SIZE(vec)
    cdef int64_t *op = <int64_t *>cnp.PyArray_DATA(o)
    for i in range(u.n):
        if op[i] < 0 or op[i] + u.rp[i] * u.cp[i] > size:
            raise ValueError(f"{name}: matrix {i} ({u.rp[i]} x {u.cp[i]} at {op[i]}) is "
                             f"outside its {size} elements")
    return o


cdef _sized(cnp.ndarray vec, str name, int64_t want):
    if cnp.PyArray_SIZE(vec) != want:
        raise ValueError(f"{name} has {cnp.PyArray_SIZE(vec)} elements, expected {want}")


cdef cnp.ndarray _unit(_Shape u, cnp.ndarray vec, str name, object off, cnp.ndarray Q,
                       cnp.ndarray P):
    """The checks every pass over a unit makes once its arrays are float32: the matrices'
    offsets into ``vec`` (returned), then Q's and P's concatenated sizes."""
    cdef cnp.ndarray o = _placed(vec, name, off, u)
    _sized(Q, "q", int((u.cols * u.ranks).sum()))
    _sized(P, "p", int((u.rows * u.ranks).sum()))
    return o


def lr_encode(m, m_off, g, g_off, shape, q, p):
    """``M_i += G_i`` (unless ``g`` is None), then ``P_i = M_i Q_i``; see the twin."""
    cdef _Shape u = _shape(shape)
    cdef cnp.ndarray M = _f32(m, "m", True), Q = _f32(q, "q", False), P = _f32(p, "p", True)
    cdef cnp.ndarray mo = _unit(u, M, "m", m_off, Q, P), go, G
    cdef float *gp = NULL
    cdef int64_t *gop = NULL
    if g is not None:
        G = _f32(g, "g", False)
        go = _placed(G, "g", g_off, u)
        gp = <float *>cnp.PyArray_DATA(G)
        gop = <int64_t *>cnp.PyArray_DATA(go)
    cdef int rc
    with nogil:
        rc = dtnn_lr_encode(<float *>cnp.PyArray_DATA(M), <int64_t *>cnp.PyArray_DATA(mo),
                            gp, gop, u.n, u.rp, u.cp, u.kp,
                            <float *>cnp.PyArray_DATA(Q), <float *>cnp.PyArray_DATA(P))
    if rc:
        raise MemoryError("lr_encode: out of memory")


def lr_orthonormalize(p, shape, float eps=1e-8):
    """Modified Gram-Schmidt on the columns of every P_i, in place; see the twin."""
    cdef _Shape u = _shape(shape)
    cdef cnp.ndarray P = _f32(p, "p", True)
    _sized(P, "p", int((u.rows * u.ranks).sum()))
    with nogil:
        dtnn_lr_orthonormalize(<float *>cnp.PyArray_DATA(P), u.n, u.rp, u.kp, eps)


def lr_round2(m, m_off, shape, p, q, bint ef):
    """``Q_i = M_i^T P_i``, then ``M_i -= P_i Q_i^T`` if ``ef``; see the twin."""
    cdef _Shape u = _shape(shape)
    cdef cnp.ndarray M = _f32(m, "m", bool(ef)), P = _f32(p, "p", False)
    cdef cnp.ndarray Q = _f32(q, "q", True), mo = _unit(u, M, "m", m_off, Q, P)
    cdef int rc
    with nogil:
        rc = dtnn_lr_round2(<float *>cnp.PyArray_DATA(M), <int64_t *>cnp.PyArray_DATA(mo),
                            u.n, u.rp, u.cp, u.kp,
                            <float *>cnp.PyArray_DATA(P), <float *>cnp.PyArray_DATA(Q), ef)
    if rc:
        raise MemoryError("lr_round2: out of memory")


def lr_decode(out, out_off, shape, p, q, float alpha):
    """``OUT_i = alpha * P_i Q_i^T`` (written); see the twin."""
    cdef _Shape u = _shape(shape)
    cdef cnp.ndarray O = _f32(out, "out", True), P = _f32(p, "p", False)
    cdef cnp.ndarray Q = _f32(q, "q", False), oo = _unit(u, O, "out", out_off, Q, P)
    cdef int rc
    with nogil:
        rc = dtnn_lr_decode(<float *>cnp.PyArray_DATA(O), <int64_t *>cnp.PyArray_DATA(oo),
                            u.n, u.rp, u.cp, u.kp,
                            <float *>cnp.PyArray_DATA(P), <float *>cnp.PyArray_DATA(Q), alpha)
    if rc:
        raise MemoryError("lr_decode: out of memory")


cdef extern from "randomk.h" nogil:
    int dtnn_rk_encode(float *res, float *flat, const int64_t *starts, const int64_t *lens,
                       int64_t nranges, const int32_t *idx, int64_t k, float *payload,
                       int32_t *flat_idx, int move)


def rk_encode(res, flat, starts, lens, idx, payload, flat_idx, bint move):
    """random-k's encode with error feedback in one pass; see the twin
    (``dtnn.compress.randomk_twins``)."""
    cdef cnp.ndarray R = _f32(res, "res", True), F = _f32(flat, "flat", bool(move))
    cdef cnp.ndarray P = _f32(payload, "payload", True)
    cdef int64_t nr = len(starts)
    cdef cnp.ndarray S = _i64(starts, "starts", nr), L = _i64(lens, "lens", nr)
    cdef int64_t i, tot = 0, fsize = cnp.PyArray_SIZE(F)
    cdef int64_t *sp = <int64_t *>cnp.PyArray_DATA(S)
    cdef int64_t *lp = <int64_t *>cnp.PyArray_DATA(L)
    if fsize >= 2 ** 31:
        raise ValueError("rk_encode: flat vectors of 2**31 elements or more are not supported")
    for i in range(nr):
        if sp[i] < 0 or lp[i] < 0 or sp[i] + lp[i] > fsize:
            raise ValueError(f"rk_encode: range {i} ({sp[i]}, +{lp[i]}) is outside flat")
        tot += lp[i]
    _sized(R, "res", tot)
    cdef int64_t k = cnp.PyArray_SIZE(P)
    for a, name in ((idx, "idx"), (flat_idx, "flat_idx")):
        if not isinstance(a, np.ndarray) or a.dtype != np.int32 or a.ndim != 1 \
                or a.shape[0] != k or not a.flags.c_contiguous:
            raise ValueError(f"{name} must be a C-contiguous int32 vector of {k} elements")
    if not flat_idx.flags.writeable:
        raise ValueError("flat_idx is read-only")
    cdef int32_t *ip = <int32_t *>cnp.PyArray_DATA(<cnp.ndarray>idx)
    cdef int32_t *fp = <int32_t *>cnp.PyArray_DATA(<cnp.ndarray>flat_idx)
    cdef int rc
    with nogil:
        rc = dtnn_rk_encode(<float *>cnp.PyArray_DATA(R), <float *>cnp.PyArray_DATA(F), sp, lp,
                            nr, ip, k, <float *>cnp.PyArray_DATA(P), fp, move)
    if rc:
        raise ValueError("rk_encode: idx must be increasing unit indices")
