/*
 * Batched float32 GEMM over dtnn's OpenMP threads, each part computed by a BLAS
 * sgemm called single-threaded ("one thread pool", dtnn/threads.py).
 *
 * Why: OpenBLAS (numpy's BLAS) threads its GEMMs on a pthreads pool of its own, while
 * dtnn's kernels run on OpenMP threads.  Two pools on the same cores fight: OpenMP
 * workers spinning after a region steal the core from OpenBLAS's workers, and a short
 * spin instead makes every OpenMP region pay a futex wake-up.  With the BLAS at one
 * thread and the GEMMs split here over the OpenMP team, the same threads run
 * everything and may spin between regions without taking a core from anyone.
 *
 * The sgemm is not linked: the caller passes the address of a loaded library's
 * cblas_sgemm (row-major CBLAS signature, 32- or 64-bit integers), which must be
 * limited to one thread while this runs.  Each part of C is computed by exactly one
 * call, over the full K, so the result does not depend on the thread count beyond
 * what the BLAS's own blocking of a narrower M or N changes (ulp-level).
 */
#ifndef DTNN_GEMM_H
#define DTNN_GEMM_H

#include <stdint.h>

/* C[g] = alpha * op(A[g]) @ op(B[g]) + beta * C[g] for g < batch (row-major; ta/tb:
 * 0 = as stored, 1 = transposed; sa/sb/sc: element strides between the batch's
 * matrices, 0 broadcasts one matrix).  op(A) is m x k, op(B) k x n, C m x n.
 * sc == 0 with batch > 1 sums the batch's products into the one C:
 * C = alpha * sum_g op(A[g]) @ op(B[g]) + beta * C (each thread owns a slab of C).
 * threads: the OpenMP team size to use (<= 1: the calling thread alone). */
void dtnn_sgemm_batched(void *sgemm, int ilp64, int64_t batch, int ta, int tb,
                        int64_t m, int64_t n, int64_t k, float alpha,
                        const float *a, int64_t lda, int64_t sa,
                        const float *b, int64_t ldb, int64_t sb, float beta,
                        float *c, int64_t ldc, int64_t sc, int threads);


/* dst (cols x rows) = src (rows x cols)^T, both contiguous float32; the loop runs along
 * the longer side so that the short side's rows are streams (the tapgemm layouts:
 * one side is a filter's or an image's R*S / H*W, the other K*C or N*C). */
void dtnn_transpose2d(const float *src, float *dst, int64_t rows, int64_t cols, int threads);

#endif
