/* Batched GEMM split over the OpenMP team, one single-threaded BLAS call per part
 * (see gemm.h for why). */
#include "gemm.h"

#include <omp.h>

enum { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112 };

typedef void (*sgemm64_fn)(int, int, int, int64_t, int64_t, int64_t, float, const float *,
                           int64_t, const float *, int64_t, float, float *, int64_t);
typedef void (*sgemm32_fn)(int, int, int, int32_t, int32_t, int32_t, float, const float *,
                           int32_t, const float *, int32_t, float, float *, int32_t);

static void call_sgemm(void *fn, int ilp64, int ta, int tb, int64_t m, int64_t n,
                       int64_t k, float alpha, const float *a, int64_t lda,
                       const float *b, int64_t ldb, float beta, float *c, int64_t ldc)
{
    int oa = ta ? TRANS : NO_TRANS, ob = tb ? TRANS : NO_TRANS;
    if (ilp64)
        ((sgemm64_fn)fn)(ROW_MAJOR, oa, ob, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else
        ((sgemm32_fn)fn)(ROW_MAJOR, oa, ob, (int32_t)m, (int32_t)n, (int32_t)k, alpha, a,
                         (int32_t)lda, b, (int32_t)ldb, beta, c, (int32_t)ldc);
}

/* Part p of `parts` of [0, len) in multiples of `align` (the last part takes the rest). */
static void part_range(int64_t len, int64_t parts, int64_t p, int64_t align,
                       int64_t *lo, int64_t *hi)
{
    int64_t blocks = (len + align - 1) / align;
    int64_t b0 = blocks * p / parts, b1 = blocks * (p + 1) / parts;
    *lo = b0 * align < len ? b0 * align : len;
    *hi = b1 * align < len ? b1 * align : len;
}

void dtnn_sgemm_batched(void *sgemm, int ilp64, int64_t batch, int ta, int tb,
                        int64_t m, int64_t n, int64_t k, float alpha,
                        const float *a, int64_t lda, int64_t sa,
                        const float *b, int64_t ldb, int64_t sb, float beta,
                        float *c, int64_t ldc, int64_t sc, int threads)
{
    if (batch <= 0 || m <= 0 || n <= 0)
        return;
    if (threads < 1)
        threads = 1;
    /* Whole matrices per thread when the batch divides evenly or is long enough for the
     * imbalance not to matter; otherwise every matrix is cut into `threads` slabs
     * along its longer side (N in multiples of 16 floats, M of 8 rows). */
    /* sc == 0 with batch > 1: the products are summed into one C (reduce), so each
     * thread owns a slab of C and runs through the whole batch on it. */
    int reduce = sc == 0 && batch > 1;
    int64_t parts = (!reduce && (batch % threads == 0 || batch >= 4 * threads)) ? 1
                    : threads;
    int split_n = n >= m;
    int64_t units = reduce ? parts : batch * parts;
    int team = units < threads ? (int)units : threads;
#pragma omp parallel for schedule(static) num_threads(team) if (team > 1)
    for (int64_t u = 0; u < units; u++) {
        int64_t p = u % parts, lo = 0, hi = split_n ? n : m;
        if (parts > 1)
            part_range(split_n ? n : m, parts, p, split_n ? 16 : 8, &lo, &hi);
        if (hi <= lo)
            continue;
        int64_t g0 = reduce ? 0 : u / parts, g1 = reduce ? batch : g0 + 1;
        for (int64_t g = g0; g < g1; g++) {
            const float *ag = a + g * sa, *bg = b + g * sb;
            float *cg = c + g * sc;
            float bt = (reduce && g > 0) ? 1.0f : beta;
            if (split_n) {   /* columns lo..hi of op(B) and C */
                call_sgemm(sgemm, ilp64, ta, tb, m, hi - lo, k, alpha, ag, lda,
                           bg + (tb ? lo * ldb : lo), ldb, bt, cg + lo, ldc);
            } else {         /* rows lo..hi of op(A) and C */
                call_sgemm(sgemm, ilp64, ta, tb, hi - lo, n, k, alpha,
                           ag + (ta ? lo : lo * lda), lda, bg, ldb, bt, cg + lo * ldc, ldc);
            }
        }
    }
}

void dtnn_transpose2d(const float *src, float *dst, int64_t rows, int64_t cols, int threads)
{
    if (threads < 1)
        threads = 1;
    int par = threads > 1 && rows * cols >= 32768;
    if (rows >= cols) {
        /* i outer (long), j inner: reads contiguous, `cols` write streams */
#pragma omp parallel for schedule(static) num_threads(threads) if (par)
        for (int64_t i0 = 0; i0 < rows; i0 += 256) {
            int64_t i1 = i0 + 256 < rows ? i0 + 256 : rows;
            for (int64_t j = 0; j < cols; j++) {
                float *d = dst + j * rows;
                const float *s = src + j;
                for (int64_t i = i0; i < i1; i++)
                    d[i] = s[i * cols];
            }
        }
    } else {
        /* j outer (long), i inner: writes contiguous, `rows` read streams */
#pragma omp parallel for schedule(static) num_threads(threads) if (par)
        for (int64_t j0 = 0; j0 < cols; j0 += 256) {
            int64_t j1 = j0 + 256 < cols ? j0 + 256 : cols;
            for (int64_t i = 0; i < rows; i++) {
                const float *s = src + i * cols;
                for (int64_t j = j0; j < j1; j++)
                    dst[j * rows + i] = s[j];
            }
        }
    }
}
