# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, embedsignature=True
"""Batched float32 GEMM over dtnn's OpenMP team (C in csrc/gemm.c), each part by a BLAS
sgemm called single-threaded.  ``dtnn.gemm`` finds the sgemm and falls back to
numpy's matmul (the twin) where this does not apply."""
import numpy as np

cimport numpy as cnp
from libc.stdint cimport int64_t, uintptr_t

cnp.import_array()

cdef extern from "gemm.h" nogil:
    void dtnn_sgemm_batched(void *sgemm, int ilp64, int64_t batch, int ta, int tb,
                            int64_t m, int64_t n, int64_t k, float alpha,
                            const float *a, int64_t lda, int64_t sa,
                            const float *b, int64_t ldb, int64_t sb, float beta,
                            float *c, int64_t ldc, int64_t sc, int threads)


cdef bint _layout(cnp.ndarray x, int64_t *trans, int64_t *ld, int64_t *sg):
    """BLAS view of the (G, rows, cols) float32 array x: transposed or not, leading
    dimension and batch stride in elements; False when BLAS cannot read it."""
    cdef int64_t rows = x.shape[1], cols = x.shape[2]
    cdef int64_t s0 = x.strides[0], s1 = x.strides[1], s2 = x.strides[2]
    if s0 % 4 or s1 % 4 or s2 % 4 or s0 < 0 or s1 < 0 or s2 < 0:
        return False
    s0 //= 4
    s1 //= 4
    s2 //= 4
    sg[0] = s0 if x.shape[0] > 1 else 0
    if (cols == 1 or s2 == 1) and (rows == 1 or s1 >= cols):
        trans[0] = 0
        ld[0] = s1 if rows > 1 else max(cols, 1)
        return ld[0] >= max(cols, 1)
    if (rows == 1 or s1 == 1) and (cols == 1 or s2 >= rows):
        trans[0] = 1
        ld[0] = s2 if cols > 1 else max(rows, 1)
        return ld[0] >= max(rows, 1)
    return False


def matmul3(uintptr_t sgemm, bint ilp64, a, b, out, int threads, float beta=0.0):
    """out[g] = a[g] @ b[g] + beta * out[g] for (G|1, M, K) a, (G|1, K, N) b and
    (G, M, N) out, all float32 ndarrays (views with any BLAS-readable strides; a batch
    of 1 broadcasts).  out of batch 1 with a or b of batch G > 1 sums the G products:
    out[0] = sum_g a[g] @ b[g] + beta * out[0].  Returns False, touching nothing, when
    a layout is not BLAS-readable or out overlaps an input (the caller then uses
    numpy)."""
    for name, x in (("a", a), ("b", b), ("out", out)):
        if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.ndim != 3:
            raise ValueError(f"{name} must be a 3-D float32 numpy array")
    if a.shape[0] == 0 or b.shape[0] == 0:
        return False
    cdef cnp.ndarray A = a, B = b, C = out
    cdef int64_t G = max(A.shape[0], B.shape[0]), M = C.shape[1], N = C.shape[2]
    cdef int64_t K = A.shape[2]
    cdef bint reduce = C.shape[0] == 1 and G > 1
    if (C.shape[0] not in (1, G) or A.shape[0] not in (1, G) or B.shape[0] not in (1, G)
            or A.shape[1] != M
            or B.shape[1] != K or B.shape[2] != N):
        raise ValueError(f"matmul3: shapes {a.shape} @ {b.shape} -> {out.shape} disagree")
    if sgemm == 0 or not C.flags.writeable:
        return False
    cdef int64_t ta, tb, tc, lda, ldb, ldc, sa, sb, sc
    if not (_layout(A, &ta, &lda, &sa) and _layout(B, &tb, &ldb, &sb)
            and _layout(C, &tc, &ldc, &sc)) or tc != 0:
        return False
    if reduce:
        sc = 0
    elif G > 1 and sc == 0:
        return False
    if np.may_share_memory(C, A) or np.may_share_memory(C, B):
        return False
    if G == 0 or M == 0 or N == 0:
        return True
    cdef const float *pa = <const float *>cnp.PyArray_DATA(A)
    cdef const float *pb = <const float *>cnp.PyArray_DATA(B)
    cdef float *pc = <float *>cnp.PyArray_DATA(C)
    with nogil:
        dtnn_sgemm_batched(<void *>sgemm, ilp64, G, <int>ta, <int>tb, M, N, K, 1.0,
                           pa, lda, sa, pb, ldb, sb, beta, pc, ldc, sc, threads)
    return True


cdef extern from "gemm.h" nogil:
    void dtnn_transpose2d(const float *src, float *dst, int64_t rows, int64_t cols,
                          int threads)


def transpose2d(src, out, int threads):
    """out (cols, rows) = src (rows, cols)^T for C-contiguous float32 2-D arrays that do
    not overlap (numpy twin: ``out[...] = src.T``)."""
    for name, x in (("src", src), ("out", out)):
        if (not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.ndim != 2
                or not x.flags.c_contiguous):
            raise ValueError(f"{name} must be a C-contiguous 2-D float32 numpy array")
    if out.shape != (src.shape[1], src.shape[0]):
        raise ValueError(f"transpose2d: {src.shape} -> {out.shape}")
    if not out.flags.writeable or np.may_share_memory(src, out):
        raise ValueError("transpose2d: out must be writable and not overlap src")
    cdef cnp.ndarray S = src, D = out
    cdef const float *ps = <const float *>cnp.PyArray_DATA(S)
    cdef float *pd = <float *>cnp.PyArray_DATA(D)
    cdef int64_t r = S.shape[0], c = S.shape[1]
    with nogil:
        dtnn_transpose2d(ps, pd, r, c, threads)
