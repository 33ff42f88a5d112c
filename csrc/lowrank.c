/*
 * PowerSGD's passes over the gradient, fused and batched per unit: see lowrank.h.
 *
 * Why C: in numpy a step of PowerSGD with error feedback makes about 16 passes over
 * the unit per rank -- residual += g, M Q, M^T P, a full-size P Q^T temporary and
 * M -= it, then the decode's zero-fill, another P Q^T temporary, its scaling and the
 * add -- with three fresh full-size temporaries (page faults every step) and a Python
 * loop over the matrices.  Here the same maths is 7 passes: encode reads g and M and
 * writes M (the dots run on the row while it is in L1), round 2 reads M (Q = M^T P,
 * summed in row order into a cols x r block that stays in cache) then reads and writes
 * it (M -= P Q^T), and the decode writes the output once.
 *
 * Dots use 16 fixed partial sums combined in a fixed tree, so the bits depend on the
 * inputs only (not on threads or on the vector width the compiler picks); FMA
 * contraction is off for the same reason.  The numpy twins (dtnn.compress.lowrank_twins)
 * compute the same maths in BLAS order: they agree to rounding, not to the bit.
 */
#include "dtnn_exact_fp.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dtnn_kernels.h"
#include "lowrank.h"

#define LR_LANES 16
/* columns per task of the column-parallel sum Q = M^T P */
#define LR_COL_BLOCK 256

#if defined(__GNUC__) || defined(__clang__)
#define LR_INLINE static inline __attribute__((always_inline))
#else
#define LR_INLINE static inline
#endif

static inline float lr_dot(const float *DTNN_RESTRICT a, const float *DTNN_RESTRICT b,
                           int64_t n)
{
    float s[LR_LANES];
    int64_t c = 0;
    int l, w;
    for (l = 0; l < LR_LANES; l++)
        s[l] = 0.0f;
    for (; c + LR_LANES <= n; c += LR_LANES)
        for (l = 0; l < LR_LANES; l++)
            s[l] += a[c + l] * b[c + l];
    for (l = 0; c < n; c++, l++)
        s[l] += a[c] * b[c];
    for (w = LR_LANES / 2; w >= 1; w /= 2)
        for (l = 0; l < w; l++)
            s[l] += s[l + w];
    return s[0];
}

/* qt (r x cols) = q^T (q: cols x r) */
static void lr_transpose(const float *q, int64_t cols, int64_t r, float *qt)
{
    int64_t c, j;
    for (c = 0; c < cols; c++)
        for (j = 0; j < r; j++)
            qt[j * cols + c] = q[c * r + j];
}

/* What lr_row_pqt does with t = (P Q^T)[a, :]: round 2's residual (row -= t) or the
 * decode (row = alpha * t). */
enum lr_row_mode { LR_SUBTRACT, LR_SCALE };

/* One row of P Q^T (pa: P's row a, r values; qt: Q^T, r x C), t summed over j in order,
 * applied to row as mode says.  Rank 2 (the common setting) has its own loop: two
 * products and one add per element, which the compiler vectorises.  Always inlined with
 * a constant mode, so each caller gets its own branch-free loop. */
LR_INLINE void
lr_row_pqt(float *DTNN_RESTRICT row, const float *pa, const float *qt, int64_t C,
           int64_t r, enum lr_row_mode mode, float alpha)
{
    int64_t cc, jj;
    if (r == 2) {
        const float p0 = pa[0], p1 = pa[1];
        const float *DTNN_RESTRICT q0 = qt, *DTNN_RESTRICT q1 = qt + C;
        for (cc = 0; cc < C; cc++) {
            const float t = p0 * q0[cc] + p1 * q1[cc];
            row[cc] = mode == LR_SUBTRACT ? row[cc] - t : alpha * t;
        }
    } else {
        for (cc = 0; cc < C; cc++) {
            float t = 0.0f;
            for (jj = 0; jj < r; jj++)
                t += pa[jj] * qt[jj * C + cc];
            row[cc] = mode == LR_SUBTRACT ? row[cc] - t : alpha * t;
        }
    }
}

static int64_t lr_max_block(int64_t n, const int64_t *cols, const int64_t *ranks)
{
    int64_t i, mx = 1;
    for (i = 0; i < n; i++)
        if (cols[i] * ranks[i] > mx)
            mx = cols[i] * ranks[i];
    return mx;
}

int dtnn_lr_encode(float *m, const int64_t *m_off, const float *g, const int64_t *g_off,
                   int64_t n, const int64_t *rows, const int64_t *cols,
                   const int64_t *ranks, const float *q, float *p)
{
    float *qt = (float *)malloc(sizeof(float) * (size_t)lr_max_block(n, cols, ranks));
    int64_t i, qo = 0, po = 0;
    if (!qt)
        return -1;
    for (i = 0; i < n; i++) {
        const int64_t R = rows[i], C = cols[i], r = ranks[i];
        float *mi = m + m_off[i];
        const float *gi = g ? g + g_off[i] : NULL;
        float *pi = p + po;
        int64_t a;
        lr_transpose(q + qo, C, r, qt);
#pragma omp parallel for schedule(static) if (R * C >= 4 * DTNN_OMP_MIN_WORK)
        for (a = 0; a < R; a++) {
            float *DTNN_RESTRICT row = mi + a * C;
            int64_t c, j;
            if (gi) {
                const float *DTNN_RESTRICT grow = gi + a * C;
                for (c = 0; c < C; c++)
                    row[c] += grow[c];
            }
            for (j = 0; j < r; j++)
                pi[a * r + j] = lr_dot(row, qt + j * C, C);
        }
        qo += C * r;
        po += R * r;
    }
    free(qt);
    return 0;
}

void dtnn_lr_orthonormalize(float *p, int64_t n, const int64_t *rows,
                            const int64_t *ranks, float eps)
{
    int64_t i, po = 0;
    for (i = 0; i < n; i++) {
        const int64_t R = rows[i], r = ranks[i];
        float *pi = p + po;
        int64_t k, j, a;
        for (k = 0; k < r; k++) {
            double norm = 0.0;
            float scale;
            for (j = 0; j < k; j++) {
                double d = 0.0;
                float df;
                for (a = 0; a < R; a++)
                    d += (double)pi[a * r + j] * (double)pi[a * r + k];
                df = (float)d;
                for (a = 0; a < R; a++)
                    pi[a * r + k] -= df * pi[a * r + j];
            }
            for (a = 0; a < R; a++)
                norm += (double)pi[a * r + k] * (double)pi[a * r + k];
            scale = (float)sqrt(norm);
            if (scale < eps)
                scale = eps;
            for (a = 0; a < R; a++)
                pi[a * r + k] /= scale;
        }
        po += R * r;
    }
}

/* Round 2's or the decode's work on one matrix: mi (R x C, rank r), its P block pi and Q
 * block qi, qt scratch for one Q^T; ef: round 2's flag, alpha: the decode's scale. */
typedef void (*lr_pass)(float *mi, const float *pi, float *qi, float *qt, int64_t R,
                        int64_t C, int64_t r, int ef, float alpha);

/* The walk round 2 and the decode share: one qt for the batch's largest Q^T, then
 * pass on every matrix (at mats + off[i]; the batch's P and Q hold its blocks in matrix
 * order).  0, or -1 if qt cannot be allocated. */
static int lr_walk(lr_pass pass, float *mats, const int64_t *off, int64_t n,
                   const int64_t *rows, const int64_t *cols, const int64_t *ranks,
                   const float *p, float *q, int ef, float alpha)
{
    float *qt = (float *)malloc(sizeof(float) * (size_t)lr_max_block(n, cols, ranks));
    int64_t i, qo = 0, po = 0;
    if (!qt)
        return -1;
    for (i = 0; i < n; i++) {
        pass(mats + off[i], p + po, q + qo, qt, rows[i], cols[i], ranks[i], ef, alpha);
        qo += cols[i] * ranks[i];
        po += rows[i] * ranks[i];
    }
    free(qt);
    return 0;
}

/* Q_i = M_i^T P_i (qi); then, if ef, M_i -= P_i Q_i^T */
static void lr_round2_one(float *mi, const float *pi, float *qi, float *qt, int64_t R,
                          int64_t C, int64_t r, int ef, float alpha)
{
    const int64_t nblk = (C + LR_COL_BLOCK - 1) / LR_COL_BLOCK;
    int64_t blk, a, c, j;
    (void)alpha;
    /* qt (r x C) = (M^T P)^T, summed over rows in row order, per column block */
#pragma omp parallel for schedule(static) if (R * C >= 4 * DTNN_OMP_MIN_WORK)
    for (blk = 0; blk < nblk; blk++) {
        const int64_t c0 = blk * LR_COL_BLOCK;
        const int64_t c1 = c0 + LR_COL_BLOCK < C ? c0 + LR_COL_BLOCK : C;
        int64_t aa, cc, jj;
        for (jj = 0; jj < r; jj++)
            memset(qt + jj * C + c0, 0, sizeof(float) * (size_t)(c1 - c0));
        for (aa = 0; aa < R; aa++) {
            const float *DTNN_RESTRICT row = mi + aa * C;
            for (jj = 0; jj < r; jj++) {
                float *DTNN_RESTRICT qj = qt + jj * C;
                const float pj = pi[aa * r + jj];
                for (cc = c0; cc < c1; cc++)
                    qj[cc] += pj * row[cc];
            }
        }
    }
    for (c = 0; c < C; c++)
        for (j = 0; j < r; j++)
            qi[c * r + j] = qt[j * C + c];
    if (ef) {
        /* M -= P Q^T, row by row (t summed over j in order, then subtracted) */
#pragma omp parallel for schedule(static) if (R * C >= 4 * DTNN_OMP_MIN_WORK)
        for (a = 0; a < R; a++)
            lr_row_pqt(mi + a * C, pi + a * r, qt, C, r, LR_SUBTRACT, 0.0f);
    }
}

int dtnn_lr_round2(float *m, const int64_t *m_off, int64_t n, const int64_t *rows,
                   const int64_t *cols, const int64_t *ranks, const float *p, float *q,
                   int ef)
{
    return lr_walk(lr_round2_one, m, m_off, n, rows, cols, ranks, p, q, ef, 0.0f);
}

/* OUT_i (oi) = alpha * P_i Q_i^T (qi is only read) */
static void lr_decode_one(float *oi, const float *pi, float *qi, float *qt, int64_t R,
                          int64_t C, int64_t r, int ef, float alpha)
{
    int64_t a;
    (void)ef;
    lr_transpose(qi, C, r, qt);
#pragma omp parallel for schedule(static) if (R * C >= 4 * DTNN_OMP_MIN_WORK)
    for (a = 0; a < R; a++)
        lr_row_pqt(oi + a * C, pi + a * r, qt, C, r, LR_SCALE, alpha);
}

int dtnn_lr_decode(float *out, const int64_t *out_off, int64_t n, const int64_t *rows,
                   const int64_t *cols, const int64_t *ranks, const float *p,
                   const float *q, float alpha)
{
    /* lr_walk's q is writable for round 2; the decode only reads it */
    return lr_walk(lr_decode_one, out, out_off, n, rows, cols, ranks, p, (float *)q, 0, alpha);
}
