# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, embedsignature=True
"""Compiled gradient-compression kernels (C in csrc/compress.c, csrc/compress_topk.c,
csrc/compress_qring.c and csrc/bitpack.c).

Same signatures and results as the numpy twins in ``dtnn.compress.twins`` and
``dtnn.compress.bitpack_twins`` (those modules document the contract).  The wrappers
check dtypes, contiguity and sizes, then call C without the GIL.
"""
import numpy as np

cimport numpy as cnp
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint16_t, uint64_t
from libc.stdlib cimport free, malloc

cnp.import_array()

include "_isa.pxi"

include "_compress_decl.pxi"

cdef dict _KINDS = {"l2": 0, "max": 1, "l1": 2}
cdef Py_ssize_t _INT32_MAX = 2147483647


def openmp_enabled():
    return bool(dtnn_cx_openmp_enabled())


def openmp_max_threads():
    return int(dtnn_cx_openmp_max_threads())


include "_vec.pxi"


cdef cnp.ndarray _out(object out, Py_ssize_t n, object dtype, str name):
    if out is None:
        return np.empty(n, dtype)
    cdef cnp.ndarray o = _vec(out, dtype, name, True)
    if o.shape[0] != n:
        raise ValueError(f"{name} must have {n} elements, got {o.shape[0]}")
    return o


cdef const float *_opt_x(object x, Py_ssize_t n, str other) except? NULL:
    """The data of the optional float32 vector ``x`` (same size as ``other``), or NULL
    for None.  ``_vec`` does not copy, so the pointer lives as long as the caller's ``x``."""
    if x is None:
        return NULL
    cdef cnp.ndarray xa = _vec(x, np.float32, "x")
    if xa.shape[0] != n:
        raise ValueError(f"x and {other} differ in size")
    return <const float *>cnp.PyArray_DATA(xa)


cdef cnp.ndarray _scales(object scales, Py_ssize_t n, Py_ssize_t chunk):
    """``scales`` checked to hold one float32 value per ``chunk`` of ``n``."""
    cdef cnp.ndarray sa = _vec(scales, np.float32, "scales")
    if chunk < 1 or sa.shape[0] != (n + chunk - 1) // chunk:
        raise ValueError("scales must hold one value per chunk")
    return sa


cdef inline uint64_t _key(object key):
    return <uint64_t>(int(key) & 0xFFFFFFFFFFFFFFFF)


def uniform(Py_ssize_t n, key):
    cdef cnp.ndarray out = np.empty(n, np.float32)
    cdef uint64_t k = _key(key)
    with nogil:
        dtnn_cx_uniform(<float *>cnp.PyArray_DATA(out), n, k)
    return out


# fp16 and bf16 share one wrapper each way: only the C conversion differs
ctypedef void (*_encode16_fn)(const float *, uint16_t *, int64_t, float) noexcept nogil
ctypedef void (*_decode16_fn)(const uint16_t *, float *, int64_t, float, int) noexcept nogil


cdef cnp.ndarray _encode16(_encode16_fn encode, object x, float scale, object out):
    cdef cnp.ndarray xa = _vec(x, np.float32, "x")
    cdef Py_ssize_t n = xa.shape[0]
    cdef cnp.ndarray o = _out(out, n, np.uint16, "out")
    with nogil:
        encode(<const float *>cnp.PyArray_DATA(xa), <uint16_t *>cnp.PyArray_DATA(o), n, scale)
    return o


cdef cnp.ndarray _decode16(_decode16_fn decode, object h, float alpha, object out,
                           bint accumulate):
    cdef cnp.ndarray ha = _vec(h, np.uint16, "h")
    cdef Py_ssize_t n = ha.shape[0]
    cdef cnp.ndarray o = _out(out, n, np.float32, "out")
    with nogil:
        decode(<const uint16_t *>cnp.PyArray_DATA(ha), <float *>cnp.PyArray_DATA(o), n,
               alpha, accumulate)
    return o


def f32_to_f16(x, float scale=1.0, out=None):
    return _encode16(dtnn_cx_f32_to_f16, x, scale, out)


def f16_to_f32(h, float alpha=1.0, out=None, bint accumulate=False):
    return _decode16(dtnn_cx_f16_to_f32, h, alpha, out, accumulate)


def f32_to_bf16(x, float scale=1.0, out=None):
    return _encode16(dtnn_cx_f32_to_bf16, x, scale, out)


def bf16_to_f32(h, float alpha=1.0, out=None, bint accumulate=False):
    return _decode16(dtnn_cx_bf16_to_f32, h, alpha, out, accumulate)


def chunk_norms(x, Py_ssize_t chunk, str kind="l2"):
    cdef cnp.ndarray xa = _vec(x, np.float32, "x")
    cdef Py_ssize_t n = xa.shape[0]
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of l2, max, l1, got {kind!r}")
    cdef int kd = _KINDS[kind]
    cdef cnp.ndarray o = np.empty((n + chunk - 1) // chunk, np.float32)
    with nogil:
        dtnn_cx_chunk_norms(<const float *>cnp.PyArray_DATA(xa), n, chunk, kd,
                            <float *>cnp.PyArray_DATA(o))
    return o


def quantize_i8(x, Py_ssize_t chunk, scales, float levels, key, bint stochastic=True, out=None):
    cdef cnp.ndarray xa = _vec(x, np.float32, "x")
    cdef Py_ssize_t n = xa.shape[0]
    cdef cnp.ndarray sa = _scales(scales, n, chunk)
    if not 0 < levels <= 127:
        raise ValueError(f"levels must be in (0, 127], got {levels}")
    cdef cnp.ndarray o = _out(out, n, np.int8, "out")
    cdef uint64_t k = _key(key)
    with nogil:
        dtnn_cx_quantize_i8(<const float *>cnp.PyArray_DATA(xa), <int8_t *>cnp.PyArray_DATA(o),
                            n, chunk, <const float *>cnp.PyArray_DATA(sa), levels, k, stochastic)
    return o


def dequantize_i8(q, Py_ssize_t chunk, scales, double levels, double alpha=1.0, out=None,
                  bint accumulate=False):
    cdef cnp.ndarray qa = _vec(q, np.int8, "q")
    cdef Py_ssize_t n = qa.shape[0]
    cdef cnp.ndarray sa = _scales(scales, n, chunk)
    cdef cnp.ndarray o = _out(out, n, np.float32, "out")
    with nogil:
        dtnn_cx_dequantize_i8(<const int8_t *>cnp.PyArray_DATA(qa), <float *>cnp.PyArray_DATA(o),
                              n, chunk, <const float *>cnp.PyArray_DATA(sa), alpha, levels,
                              accumulate)
    return o


cdef Py_ssize_t _packed_chunk(Py_ssize_t chunk, Py_ssize_t n, cnp.ndarray scales, int per,
                              str need):
    """The chunk of a format packing ``per`` values a byte (0 or >= n: one chunk), checked
    against its ``scales`` (ValueError "<need> (<chunks>)" if not one per chunk)."""
    if chunk <= 0 or chunk >= n:
        chunk = max(per, ((n + per - 1) // per) * per)
    if chunk % per:
        raise ValueError(f"chunk must be a multiple of {per}, got {chunk}")
    if scales.shape[0] != (n + chunk - 1) // chunk:
        raise ValueError(f"{need} ({(n + chunk - 1) // chunk})")
    return chunk


# terngrad (4 values a byte) and sign (8 a byte) unpack alike: packed bytes + one float
# per chunk -> float32, with alpha and accumulate
ctypedef void (*_unpack_fn)(const uint8_t *, float *, int64_t, const float *, int64_t, float,
                            int) noexcept nogil
cdef str _TERN_NEED = "need one scale per chunk"
cdef str _SIGN_NEED = "values must hold one value per chunk"


cdef cnp.ndarray _unpack(_unpack_fn unpack, int per, object packed, str pname, Py_ssize_t n,
                         object scales, str sname, str need, Py_ssize_t chunk, float alpha,
                         object out, bint accumulate):
    cdef cnp.ndarray pa = _vec(packed, np.uint8, pname)
    cdef cnp.ndarray sa = _vec(scales, np.float32, sname)
    if pa.shape[0] != (n + per - 1) // per:
        raise ValueError(f"{pname} must have {(n + per - 1) // per} bytes for n={n}")
    chunk = _packed_chunk(chunk, n, sa, per, need)
    cdef cnp.ndarray o = _out(out, n, np.float32, "out")
    with nogil:
        unpack(<const uint8_t *>cnp.PyArray_DATA(pa), <float *>cnp.PyArray_DATA(o), n,
               <const float *>cnp.PyArray_DATA(sa), chunk, alpha, accumulate)
    return o


def terngrad_quantize(x, scales, Py_ssize_t chunk, key, out=None):
    cdef cnp.ndarray xa = _vec(x, np.float32, "x")
    cdef cnp.ndarray sa = _vec(scales, np.float32, "scales")
    cdef Py_ssize_t n = xa.shape[0]
    chunk = _packed_chunk(chunk, n, sa, 4, _TERN_NEED)
    cdef cnp.ndarray o = _out(out, (n + 3) // 4, np.uint8, "out")
    cdef uint64_t k = _key(key)
    with nogil:
        dtnn_cx_terngrad_quantize(<const float *>cnp.PyArray_DATA(xa),
                                  <uint8_t *>cnp.PyArray_DATA(o), n,
                                  <const float *>cnp.PyArray_DATA(sa), chunk, k)
    return o


def terngrad_dequantize(packed, Py_ssize_t n, scales, Py_ssize_t chunk, float alpha=1.0,
                        out=None, bint accumulate=False):
    return _unpack(dtnn_cx_terngrad_dequantize, 4, packed, "packed", n, scales, "scales",
                   _TERN_NEED, chunk, alpha, out, accumulate)


def add_l1(x, e):
    cdef cnp.ndarray ea = _vec(e, np.float32, "e", x is not None)
    cdef Py_ssize_t n = ea.shape[0]
    cdef const float *xp = _opt_x(x, n, "e")
    cdef double r
    with nogil:
        r = dtnn_cx_add_l1(xp, <float *>cnp.PyArray_DATA(ea), n)
    return r


def sign_pack(c, values, Py_ssize_t chunk=0, bint ef=False, out=None):
    cdef cnp.ndarray ca = _vec(c, np.float32, "c", ef)
    cdef cnp.ndarray va = _vec(values, np.float32, "values")
    cdef Py_ssize_t n = ca.shape[0]
    chunk = _packed_chunk(chunk, n, va, 8, _SIGN_NEED)
    cdef cnp.ndarray o = _out(out, (n + 7) // 8, np.uint8, "out")
    with nogil:
        dtnn_cx_sign_pack(<float *>cnp.PyArray_DATA(ca), <uint8_t *>cnp.PyArray_DATA(o), n,
                          <const float *>cnp.PyArray_DATA(va), chunk, ef)
    return o


def sign_encode(c, x, Py_ssize_t chunk, bint ef, values, bits):
    """``c += x`` (x may be None), ``values`` = each chunk's mean |c|, ``bits`` = the
    packed signs of c, and with ``ef`` ``c -= sent value``: add_l1 + chunk_norms(l1) +
    sign_pack in one pass per chunk (the same bits)."""
    cdef cnp.ndarray ca = _vec(c, np.float32, "c", True)
    cdef Py_ssize_t n = ca.shape[0]
    cdef const float *xp = _opt_x(x, n, "c")
    cdef cnp.ndarray va = _vec(values, np.float32, "values", True)
    chunk = _packed_chunk(chunk, n, va, 8, _SIGN_NEED)
    cdef cnp.ndarray ba = _out(bits, (n + 7) // 8, np.uint8, "bits")
    with nogil:
        dtnn_cx_sign_encode(xp, <float *>cnp.PyArray_DATA(ca), n, chunk,
                            <float *>cnp.PyArray_DATA(va), <uint8_t *>cnp.PyArray_DATA(ba), ef)
    return ba


def sign_unpack(bits, Py_ssize_t n, values, Py_ssize_t chunk=0, float alpha=1.0, out=None,
                bint accumulate=False):
    return _unpack(dtnn_cx_sign_unpack, 8, bits, "bits", n, values, "values", _SIGN_NEED,
                   chunk, alpha, out, accumulate)


cdef dict _WINDOW_KINDS = {"int8": (0, 1), "terngrad": (1, 4), "sign": (2, 8)}


def decode_window(str kind, codes, Py_ssize_t n, scales, Py_ssize_t chunk, double alpha,
                  double levels, Py_ssize_t s0, Py_ssize_t e0, out, base=None,
                  bint accumulate=False):
    """Elements [s0, e0) of an n-element int8 / terngrad / sign payload (codes + one
    scale per chunk) into ``out`` (e0 - s0 elements): ``out = base + v`` with ``base``,
    else ``out += v`` (accumulate) or ``out = v``."""
    if kind not in _WINDOW_KINDS:
        raise ValueError(f"kind must be one of {', '.join(_WINDOW_KINDS)}, got {kind!r}")
    cdef int k = _WINDOW_KINDS[kind][0]
    cdef int per = _WINDOW_KINDS[kind][1]
    cdef cnp.ndarray ca = _vec(codes, np.int8 if k == 0 else np.uint8, "codes")
    if ca.shape[0] != (n + per - 1) // per:
        raise ValueError(f"codes must have {(n + per - 1) // per} entries for n={n}")
    cdef cnp.ndarray sa = _vec(scales, np.float32, "scales")
    if k == 0:
        sa = _scales(scales, n, chunk)
    else:
        chunk = _packed_chunk(chunk, n, sa, per, "scales must hold one value per chunk")
    if not 0 <= s0 <= e0 <= n:
        raise ValueError(f"window [{s0}, {e0}) must lie in [0, {n}]")
    cdef cnp.ndarray o = _out(out, e0 - s0, np.float32, "out")
    cdef const float *bp = _opt_x(base, e0 - s0, "out")
    cdef int mode = 2 if base is not None else (1 if accumulate else 0)
    cdef const char *ob = <const char *>cnp.PyArray_DATA(o)
    cdef Py_ssize_t nbytes = 4 * (e0 - s0)
    if bp != NULL and nbytes and (<const char *>bp) < ob + nbytes and ob < (<const char *>bp) + nbytes:
        raise ValueError("base and out must not overlap (use accumulate=True to add in place)")
    with nogil:
        dtnn_cx_decode_window(k, <const uint8_t *>cnp.PyArray_DATA(ca),
                              <const float *>cnp.PyArray_DATA(sa), chunk, alpha, levels, s0, e0,
                              bp, <float *>cnp.PyArray_DATA(o), mode)
    return o


cdef dict _HOP_KINDS = {"int8": (0, 1), "terngrad": (1, 4), "sign": (2, 8)}


cdef Py_ssize_t _hop_psize(int per, Py_ssize_t n, Py_ssize_t chunk):
    return 4 * ((n + chunk - 1) // chunk) + (n + per - 1) // per


cdef object _hop_pieces(object pieces, Py_ssize_t n, bint writable, int64_t *bounds,
                        float **ptrs):
    """Check that ``pieces`` ((s, e, float32 view) tuples) tile [0, n) in order and fill
    bounds[0 .. np] and ptrs[0 .. np): the views must outlive the C call."""
    cdef Py_ssize_t k = 0, at = 0, s, e
    cdef cnp.ndarray v
    for s, e, view in pieces:
        if s != at or e < s:
            raise ValueError(f"pieces must tile [0, {n}) in order, got [{s}, {e}) at {at}")
        v = _vec(view, np.float32, "piece", writable)
        if v.shape[0] != e - s:
            raise ValueError(f"piece [{s}, {e}) has {v.shape[0]} elements")
        bounds[k] = s
        ptrs[k] = <float *>cnp.PyArray_DATA(v)
        k += 1
        at = e
    if at != n or k == 0:
        raise ValueError(f"pieces must tile [0, {n}), they end at {at}")
    bounds[k] = n


def qring_hop(str kind, pin, Py_ssize_t n, Py_ssize_t chunk, float levels, bint stochastic,
              str norm, key, pieces, residual=None, out=None):
    """One quantised-ring hop: the payload of decoded(``pin``) + ours (``pin`` None:
    ours alone), ours read from ``pieces`` ((s, e, view) tiling [0, n)), encoded as
    ``kind`` (int8 with ``norm`` l2/max and ``levels``, terngrad, sign with the optional
    error-feedback ``residual``) chunk by chunk without writing the fp32 sum; the same
    bits as decode + add + encode.  Returns the payload (``out``)."""
    if kind not in _HOP_KINDS:
        raise ValueError(f"kind must be one of {', '.join(_HOP_KINDS)}, got {kind!r}")
    cdef int k = _HOP_KINDS[kind][0], per = _HOP_KINDS[kind][1]
    if norm not in ("l2", "max", "l1") or (k == 0 and norm == "l1"):
        raise ValueError(f"norm must be l2 or max for int8 (sign: l1, terngrad: max), got {norm!r}")
    if chunk <= 0 or chunk % per:
        raise ValueError(f"chunk must be a positive multiple of {per}, got {chunk}")
    if k == 0 and not 0 < levels <= 127:
        raise ValueError(f"levels must be in (0, 127], got {levels}")
    if k == 2 and chunk > 8192:
        raise ValueError(f"sign: chunk must be <= 8192, got {chunk}")
    if residual is not None and k != 2:
        raise ValueError("residual (error feedback) is for sign only")
    cdef Py_ssize_t psize = _hop_psize(per, n, chunk)
    cdef const uint8_t *ip = NULL
    cdef cnp.ndarray ia
    if pin is not None:
        ia = _vec(pin, np.uint8, "pin")
        if ia.shape[0] != psize:
            raise ValueError(f"pin must have {psize} bytes, got {ia.shape[0]}")
        ip = <const uint8_t *>cnp.PyArray_DATA(ia)
    cdef cnp.ndarray o = _out(out, psize, np.uint8, "out")
    cdef float *rp = NULL
    cdef cnp.ndarray ra
    if residual is not None:
        ra = _vec(residual, np.float32, "residual", True)
        if ra.shape[0] != n:
            raise ValueError(f"residual must have {n} elements, got {ra.shape[0]}")
        rp = <float *>cnp.PyArray_DATA(ra)
    pieces = list(pieces)
    cdef Py_ssize_t np_ = len(pieces)
    cdef int64_t *bounds = <int64_t *>malloc((np_ + 1) * sizeof(int64_t))
    cdef float **ptrs = <float **>malloc((np_ + 1) * sizeof(float *))
    cdef int rc = 0
    cdef uint64_t kk = _key(key)
    cdef int nk = 0 if norm == "l2" else 1
    if bounds == NULL or ptrs == NULL:
        free(bounds)
        free(ptrs)
        raise MemoryError()
    try:
        if n > 0:
            _hop_pieces(pieces, n, False, bounds, ptrs)
        with nogil:
            rc = dtnn_cx_qring_hop(k, nk, ip, n, chunk, levels, stochastic, kk, np_, bounds,
                                   ptrs, rp, <uint8_t *>cnp.PyArray_DATA(o))
    finally:
        free(bounds)
        free(ptrs)
    if rc != 0:
        raise ValueError(f"qring_hop: unsupported arguments ({kind}, chunk {chunk}, n {n})")
    return o


def decode_pieces(str kind, payload, Py_ssize_t n, Py_ssize_t chunk, double alpha,
                  double levels, pieces):
    """A whole ``kind`` payload (scales + codes of n elements) decoded into ``pieces``
    ((s, e, writable view) tiling [0, n)): view = alpha * v, one call for all pieces."""
    if kind not in _HOP_KINDS:
        raise ValueError(f"kind must be one of {', '.join(_HOP_KINDS)}, got {kind!r}")
    cdef int k = _HOP_KINDS[kind][0], per = _HOP_KINDS[kind][1]
    if chunk <= 0 or chunk % per:
        raise ValueError(f"chunk must be a positive multiple of {per}, got {chunk}")
    cdef cnp.ndarray pa = _vec(payload, np.uint8, "payload")
    if pa.shape[0] != _hop_psize(per, n, chunk):
        raise ValueError(f"payload must have {_hop_psize(per, n, chunk)} bytes, got {pa.shape[0]}")
    pieces = list(pieces)
    cdef Py_ssize_t np_ = len(pieces)
    if n == 0:
        return
    cdef int64_t *bounds = <int64_t *>malloc((np_ + 1) * sizeof(int64_t))
    cdef float **ptrs = <float **>malloc((np_ + 1) * sizeof(float *))
    if bounds == NULL or ptrs == NULL:
        free(bounds)
        free(ptrs)
        raise MemoryError()
    try:
        _hop_pieces(pieces, n, True, bounds, ptrs)
        with nogil:
            dtnn_cx_decode_pieces(k, <const uint8_t *>cnp.PyArray_DATA(pa), n, chunk, alpha,
                                  levels, np_, bounds, ptrs)
    finally:
        free(bounds)
        free(ptrs)


def topk(c, Py_ssize_t k, x=None, bint zero=False, idx=None, val=None):
    cdef cnp.ndarray ca = _vec(c, np.float32, "c", zero or x is not None)
    cdef Py_ssize_t n = ca.shape[0]
    if n > _INT32_MAX:
        raise ValueError("topk needs n < 2^31")
    k = max(0, min(k, n))
    cdef const float *xp = _opt_x(x, n, "c")
    cdef cnp.ndarray ia = _out(idx, k, np.int32, "idx")
    cdef cnp.ndarray va = _out(val, k, np.float32, "val")
    cdef int64_t m
    with nogil:
        m = dtnn_cx_topk(xp, <float *>cnp.PyArray_DATA(ca), n, k,
                         <int32_t *>cnp.PyArray_DATA(ia), <float *>cnp.PyArray_DATA(va), zero)
    if m < 0:
        raise MemoryError("topk: out of memory")
    return ia, va


def scatter_add(idx, val, float alpha, out):
    cdef cnp.ndarray ia = _vec(idx, np.int32, "idx")
    cdef cnp.ndarray va = _vec(val, np.float32, "val")
    cdef cnp.ndarray o = _vec(out, np.float32, "out", True)
    if ia.shape[0] != va.shape[0]:
        raise ValueError("idx and val differ in size")
    cdef Py_ssize_t k = ia.shape[0]
    if k and (int(ia.min()) < 0 or int(ia.max()) >= o.shape[0]):
        raise ValueError("index out of range")
    with nogil:
        dtnn_cx_scatter_add(<const int32_t *>cnp.PyArray_DATA(ia),
                            <const float *>cnp.PyArray_DATA(va), k, alpha,
                            <float *>cnp.PyArray_DATA(o))
    return o


def gather(c, idx, x=None, bint zero=False, val=None):
    cdef cnp.ndarray ca = _vec(c, np.float32, "c", zero or x is not None)
    cdef cnp.ndarray ia = _vec(idx, np.int32, "idx")
    cdef Py_ssize_t n = ca.shape[0], k = ia.shape[0]
    if k and (int(ia.min()) < 0 or int(ia.max()) >= n):
        raise ValueError("index out of range")
    cdef const float *xp = _opt_x(x, n, "c")
    cdef cnp.ndarray va = _out(val, k, np.float32, "val")
    with nogil:
        dtnn_cx_gather(xp, <float *>cnp.PyArray_DATA(ca), n,
                       <const int32_t *>cnp.PyArray_DATA(ia), k,
                       <float *>cnp.PyArray_DATA(va), zero)
    return va


# ---------------------------------------------------------------- bit packing
cdef int _bits(object bits) except -1:
    cdef long b = int(bits)
    if b < 1 or b > 8:
        raise ValueError(f"bits must be in 1..8, got {bits}")
    return <int>b


cdef cnp.ndarray _packed(object packed, Py_ssize_t n, int b):
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    cdef cnp.ndarray pa = _vec(packed, np.uint8, "packed")
    cdef Py_ssize_t need = dtnn_bp_packed_size(n, b)
    if pa.shape[0] != need:
        raise ValueError(f"packed must have {need} bytes, got {pa.shape[0]}")
    return pa


def packed_size(Py_ssize_t n, bits):
    return int(dtnn_bp_packed_size(n, _bits(bits)))


def pack_bits(q, bits, out=None):
    cdef int b = _bits(bits)
    cdef cnp.ndarray qa = _vec(q, np.int8, "q")
    cdef Py_ssize_t n = qa.shape[0]
    cdef cnp.ndarray o = _out(out, dtnn_bp_packed_size(n, b), np.uint8, "out")
    with nogil:
        dtnn_bp_pack(<const int8_t *>cnp.PyArray_DATA(qa), <uint8_t *>cnp.PyArray_DATA(o),
                     n, b)
    return o


def unpack_bits(packed, Py_ssize_t n, bits, out=None):
    cdef int b = _bits(bits)
    cdef cnp.ndarray pa = _packed(packed, n, b)
    cdef cnp.ndarray o = _out(out, n, np.int8, "out")
    with nogil:
        dtnn_bp_unpack(<const uint8_t *>cnp.PyArray_DATA(pa), <int8_t *>cnp.PyArray_DATA(o),
                       n, b)
    return o


def dequantize_bits(packed, Py_ssize_t n, bits, Py_ssize_t chunk, scales, double levels,
                    double alpha=1.0, out=None, bint accumulate=False):
    cdef int b = _bits(bits)
    cdef cnp.ndarray pa = _packed(packed, n, b)
    cdef cnp.ndarray sa = _scales(scales, n, chunk)
    cdef cnp.ndarray o = _out(out, n, np.float32, "out")
    with nogil:
        dtnn_bp_dequantize(<const uint8_t *>cnp.PyArray_DATA(pa), <float *>cnp.PyArray_DATA(o),
                           n, b, chunk, <const float *>cnp.PyArray_DATA(sa), alpha, levels,
                           accumulate)
    return o


def isa_paths():
    """Kernel name -> ISA paths compiled in (csrc/compress.c): the streaming kernels are
    cloned for AVX2 (+F16C) and the baseline; those whose loops gain from 16 lanes (the
    RNG, int8 / TernGrad / sign coding, the L1 sums) also for AVX-512.  A kernel with
    several loops lists its widest path: decode_window's int8 windows and chunk_norms'
    max / L2 modes stay at AVX2.  The index kernels and the bit-packing (csrc/bitpack.c)
    are baseline only."""
    wide = ("uniform", "quantize_i8", "terngrad_quantize", "terngrad_dequantize", "add_l1",
            "sign_pack", "sign_unpack", "sign_encode", "decode_window", "chunk_norms",
            "qring_hop", "decode_pieces")
    cloned = ("f32_to_f16", "f16_to_f32", "f32_to_bf16", "bf16_to_f32", "dequantize_i8",
              "topk")
    plain = ("scatter_add", "gather", "pack_bits", "unpack_bits", "dequantize_bits")
    paths = {n: ["avx512", "avx2", "generic"] for n in wide}
    paths.update({n: ["avx2", "generic"] for n in cloned})
    paths.update({n: ["generic"] for n in plain})
    return paths
