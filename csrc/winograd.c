/*
 * Winograd F(2x2,3x3) and F(4x4,3x3) input and output transforms (see winograd.h).
 *
 * Work is split over (channel, block of TB tiles) pairs; each pair owns a disjoint
 * slice of V (input transform) or of y (output transform), so threads never share
 * output.  Zero coefficients of the transform matrices are skipped outside the
 * vector loops.  Hot loops are compiled for AVX-512/AVX2 with a generic fallback
 * (GCC function multi-versioning) so one binary runs everywhere.
 */
#include <string.h>

#include "winograd.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#define TB 64
#define AMAX 6

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define DTNN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define DTNN_CLONES
#endif

/* B^T (alpha x alpha) and A^T (m x alpha) */
static const float BT2[4][4] = {
    {1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
static const float AT2[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};
static const float BT4[6][6] = {
    {4, 0, -5, 0, 1, 0},  {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
    {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1}};
static const float AT4[4][6] = {
    {1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1}};

static inline float bt(int64_t m, int i, int k) { return m == 2 ? BT2[i][k] : BT4[i][k]; }
static inline float at(int64_t m, int i, int k) { return m == 2 ? AT2[i][k] : AT4[i][k]; }

/* out[i][j][t] = sum_k Mx[i][k] * in[k][j][t]   (rows x alpha) . (alpha x cols x nt) */
static inline void left_mul(const float *Mx, int rows, int alpha, int cols,
                            const float *in, float *out, int nt)
{
    for (int i = 0; i < rows; ++i)
        for (int j = 0; j < cols; ++j) {
            float *o = out + (i * cols + j) * TB;
            for (int t = 0; t < nt; ++t) o[t] = 0.0f;
            for (int k = 0; k < alpha; ++k) {
                const float c = Mx[i * alpha + k];
                if (c == 0.0f) continue;
                const float *p = in + (k * cols + j) * TB;
                for (int t = 0; t < nt; ++t) o[t] += c * p[t];
            }
        }
}

DTNN_CLONES
static void input_block(const float *xc, float *V, int64_t CT, int64_t T, int64_t t0,
                        int nt, int64_t H, int64_t W, int64_t pad_h, int64_t pad_w,
                        int64_t m, int64_t th, int64_t tw, int64_t CHW)
{
    const int alpha = (int)m + 2;
    float d[AMAX * AMAX * TB], tmp[AMAX * AMAX * TB];
    float Bm[AMAX * AMAX];
    for (int i = 0; i < alpha; ++i)
        for (int k = 0; k < alpha; ++k) Bm[i * alpha + k] = bt(m, i, k);
    /* gather: d[u][v][t] = x[n, c, i*m + u - pad_h, j*m + v - pad_w] (0 outside) */
    for (int t = 0; t < nt; ++t) {
        const int64_t tt = t0 + t, n = tt / (th * tw), rem = tt % (th * tw);
        const int64_t h0 = (rem / tw) * m - pad_h, w0 = (rem % tw) * m - pad_w;
        const float *img = xc + n * CHW;
        const int interior = h0 >= 0 && w0 >= 0 && h0 + alpha <= H && w0 + alpha <= W;
        for (int u = 0; u < alpha; ++u) {
            const int64_t h = h0 + u;
            if (interior) {
                const float *row = img + h * W + w0;
                for (int v = 0; v < alpha; ++v) d[(u * alpha + v) * TB + t] = row[v];
            } else {
                for (int v = 0; v < alpha; ++v) {
                    const int64_t w = w0 + v;
                    d[(u * alpha + v) * TB + t] =
                        (h >= 0 && h < H && w >= 0 && w < W) ? img[h * W + w] : 0.0f;
                }
            }
        }
    }
    /* tmp = B^T d ; then V[p = u*alpha + v] = (tmp B)[u][v] = sum_k tmp[u][k] B^T[v][k] */
    left_mul(Bm, alpha, alpha, alpha, d, tmp, nt);
    for (int u = 0; u < alpha; ++u)
        for (int v = 0; v < alpha; ++v) {
            float *o = V + (int64_t)(u * alpha + v) * CT + t0;
            float acc[TB];
            for (int t = 0; t < nt; ++t) acc[t] = 0.0f;
            for (int k = 0; k < alpha; ++k) {
                const float c = Bm[v * alpha + k];
                if (c == 0.0f) continue;
                const float *p = tmp + (u * alpha + k) * TB;
                for (int t = 0; t < nt; ++t) acc[t] += c * p[t];
            }
            memcpy(o, acc, sizeof(float) * nt);
        }
    (void)T;
}

void dtnn_wino_input_f32(const float *x, float *V, int64_t nb, int64_t C, int64_t H,
                         int64_t W, int64_t pad_h, int64_t pad_w, int64_t m,
                         int64_t th, int64_t tw)
{
    const int64_t T = nb * th * tw, nblk = (T + TB - 1) / TB;
    const int64_t CT = C * T, HW = H * W, CHW = C * H * W;
    const int64_t jobs = C * nblk;
#pragma omp parallel for schedule(static) if (jobs * TB * (m + 2) * (m + 2) > 32768)
    for (int64_t job = 0; job < jobs; ++job) {
        const int64_t c = job / nblk, b = job % nblk;
        const int64_t t0 = b * TB;
        const int nt = (int)(T - t0 < TB ? T - t0 : TB);
        input_block(x + c * HW, V + c * T, CT, T, t0, nt, H, W, pad_h, pad_w, m, th, tw,
                    CHW);
    }
}

DTNN_CLONES
static void output_block(const float *Mk, float *yk, const float bias, int64_t KT,
                         int64_t t0, int nt, int64_t Ho, int64_t Wo, int64_t m,
                         int64_t th, int64_t tw, int64_t KHW)
{
    const int alpha = (int)m + 2, mm = (int)m;
    float d[AMAX * AMAX * TB], tmp[AMAX * AMAX * TB], o[AMAX * AMAX * TB];
    float Am[AMAX * AMAX];
    for (int i = 0; i < mm; ++i)
        for (int k = 0; k < alpha; ++k) Am[i * alpha + k] = at(m, i, k);
    for (int p = 0; p < alpha * alpha; ++p)
        memcpy(d + p * TB, Mk + (int64_t)p * KT + t0, sizeof(float) * nt);
    /* tmp = A^T M  (m x alpha) ; o = tmp A  (m x m) */
    left_mul(Am, mm, alpha, alpha, d, tmp, nt);
    for (int u = 0; u < mm; ++u)
        for (int v = 0; v < mm; ++v) {
            float *oo = o + (u * mm + v) * TB;
            for (int t = 0; t < nt; ++t) oo[t] = bias;
            for (int k = 0; k < alpha; ++k) {
                const float c = Am[v * alpha + k];
                if (c == 0.0f) continue;
                const float *p = tmp + (u * alpha + k) * TB;
                for (int t = 0; t < nt; ++t) oo[t] += c * p[t];
            }
        }
    for (int t = 0; t < nt; ++t) {
        const int64_t tt = t0 + t, n = tt / (th * tw), rem = tt % (th * tw);
        const int64_t h0 = (rem / tw) * m, w0 = (rem % tw) * m;
        float *img = yk + n * KHW;
        const int64_t hn = Ho - h0 < m ? Ho - h0 : m, wn = Wo - w0 < m ? Wo - w0 : m;
        for (int64_t u = 0; u < hn; ++u)
            for (int64_t v = 0; v < wn; ++v)
                img[(h0 + u) * Wo + w0 + v] = o[(u * mm + v) * TB + t];
    }
}

void dtnn_wino_output_f32(const float *M, float *y, const float *bias, int64_t nb,
                          int64_t K, int64_t Ho, int64_t Wo, int64_t m, int64_t th,
                          int64_t tw)
{
    const int64_t T = nb * th * tw, nblk = (T + TB - 1) / TB;
    const int64_t KT = K * T, HW = Ho * Wo, KHW = K * Ho * Wo;
    const int64_t jobs = K * nblk;
#pragma omp parallel for schedule(static) if (jobs * TB * (m + 2) * (m + 2) > 32768)
    for (int64_t job = 0; job < jobs; ++job) {
        const int64_t k = job / nblk, b = job % nblk;
        const int64_t t0 = b * TB;
        const int nt = (int)(T - t0 < TB ? T - t0 : TB);
        output_block(M + k * T, y + k * HW, bias ? bias[k] : 0.0f, KT, t0, nt, Ho, Wo, m,
                     th, tw, KHW);
    }
}
