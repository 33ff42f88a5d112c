/*
 * BatchNorm (training) and PReLU passes: see bnact.h.  Why C: in numpy each of these
 * is 3-6 single-threaded passes over an activation-sized temporary; on cnet's
 * 96x28x28 layers at batch 64 (19 MB per tensor) BatchNorm and PReLU took more time
 * than the convolution between them (benchmarks/results/vs_torch_default.md).  Here a
 * forward is two passes (BatchNorm: statistics, then the affine map) or one (PReLU),
 * a backward two or one, spread over the threads by channel: a channel's rows and its
 * sums belong to one thread, so there is no reduction across threads and the result
 * does not depend on the thread count.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "bnact.h"
#include "dtnn_kernels.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* p for x > 0, else n: picked with integer masks, because a conditional that gcc can
 * fold into "x > 0 ? x : a * x" is not if-converted (the multiply could trap): it
 * became a scalar branch per element, mispredicted on real activations (5x slower) */
static inline float select_pos(float x, float p, float n)
{
    uint32_t pb, nb, ub;
    float f;
    const uint32_t mask = (uint32_t)0 - (uint32_t)(x > 0.f);
    memcpy(&pb, &p, sizeof pb);
    memcpy(&nb, &n, sizeof nb);
    ub = (pb & mask) | (nb & ~mask);
    memcpy(&f, &ub, sizeof f);
    return f;
}

#define PAR_IF(n) if ((n) >= 4 * DTNN_OMP_MIN_WORK)

void dtnn_bn_stats_f32(const float *x, int64_t N, int64_t C, int64_t L,
                       float *mean, float *var)
{
    int64_t c;
    const double inv_n = 1.0 / (double)(N * L);
#pragma omp parallel for schedule(static) PAR_IF(N * C * L)
    for (c = 0; c < C; ++c) {
        const float k = x[c * L];
        double s1 = 0.0, s2 = 0.0;
        int64_t n, l;
        for (n = 0; n < N; ++n) {
            const float *row = x + (n * C + c) * L;
            float r1 = 0.f, r2 = 0.f;
#pragma omp simd reduction(+:r1, r2)
            for (l = 0; l < L; ++l) {
                const float d = row[l] - k;
                r1 += d;
                r2 += d * d;
            }
            s1 += r1;
            s2 += r2;
        }
        {
            const double m = s1 * inv_n, v = s2 * inv_n - m * m;
            mean[c] = (float)((double)k + m);
            var[c] = (float)(v > 0.0 ? v : 0.0);
        }
    }
}

void dtnn_bn_apply_f32(const float *x, float *y, int64_t N, int64_t C, int64_t L,
                       const float *scale, const float *shift)
{
    int64_t c;
#pragma omp parallel for schedule(static) PAR_IF(N * C * L)
    for (c = 0; c < C; ++c) {
        const float a = scale[c], b = shift[c];
        int64_t n, l;
        for (n = 0; n < N; ++n) {
            const float *xr = x + (n * C + c) * L;
            float *yr = y + (n * C + c) * L;
#pragma omp simd
            for (l = 0; l < L; ++l)
                yr[l] = xr[l] * a + b;
        }
    }
}

/* BatchNorm apply + ReLU in one pass: the affine output is never stored, only its
 * positive part (NaN kept, as relu_forward): one read and one write of the activation
 * instead of two of each. */
void dtnn_bn_apply_relu_f32(const float *x, float *y, int64_t N, int64_t C, int64_t L,
                            const float *scale, const float *shift)
{
    int64_t c;
#pragma omp parallel for schedule(static) PAR_IF(N * C * L)
    for (c = 0; c < C; ++c) {
        const float a = scale[c], b = shift[c];
        int64_t n, l;
        for (n = 0; n < N; ++n) {
            const float *DTNN_RESTRICT xr = x + (n * C + c) * L;
            float *DTNN_RESTRICT yr = y + (n * C + c) * L;
#pragma omp simd
            for (l = 0; l < L; ++l) {
                const float v = xr[l] * a + b;
                uint32_t vb;
                memcpy(&vb, &v, sizeof vb);
                vb &= (uint32_t)0 - (uint32_t)!(v <= 0.f);
                memcpy(&yr[l], &vb, sizeof vb);
            }
        }
    }
}

/* g where the ReLU's output y > 0, else 0 (bit mask, no branch) */
static inline float relu_gate(float y, float g)
{
    uint32_t gb;
    float f;
    memcpy(&gb, &g, sizeof gb);
    gb &= (uint32_t)0 - (uint32_t)(y > 0.f);
    memcpy(&f, &gb, sizeof f);
    return f;
}

static void bn_backward_gated(const float *dy, const float *ry, const float *x, float *dx,
                              int64_t N, int64_t C, int64_t L, const float *mean,
                              const float *inv_std, const float *gamma, float *dgamma,
                              float *dbeta, int training);

void dtnn_bn_backward_f32(const float *dy, const float *x, float *dx, int64_t N,
                          int64_t C, int64_t L, const float *mean, const float *inv_std,
                          const float *gamma, float *dgamma, float *dbeta, int training)
{
    bn_backward_gated(dy, NULL, x, dx, N, C, L, mean, inv_std, gamma, dgamma, dbeta,
                      training);
}

/* The BatchNorm backward of relu_backward(dy, y) without materialising it: the gate is
 * applied where dy is read, in both passes (sums, then dx), so the results are the
 * same bits as the two kernels one after the other. */
void dtnn_bn_relu_backward_f32(const float *dy, const float *y, const float *x, float *dx,
                               int64_t N, int64_t C, int64_t L, const float *mean,
                               const float *inv_std, const float *gamma, float *dgamma,
                               float *dbeta, int training)
{
    bn_backward_gated(dy, y, x, dx, N, C, L, mean, inv_std, gamma, dgamma, dbeta,
                      training);
}

static void bn_backward_gated(const float *dy, const float *ry, const float *x, float *dx,
                              int64_t N, int64_t C, int64_t L, const float *mean,
                              const float *inv_std, const float *gamma, float *dgamma,
                              float *dbeta, int training)
{
    int64_t c;
    const double inv_n = 1.0 / (double)(N * L);
#pragma omp parallel for schedule(static) PAR_IF(N * C * L)
    for (c = 0; c < C; ++c) {
        const float m = mean[c], is = inv_std[c];
        double sdy = 0.0, sdyx = 0.0;
        int64_t n, l;
        for (n = 0; n < N; ++n) {
            const float *g = dy + (n * C + c) * L, *xr = x + (n * C + c) * L;
            const float *yr = ry != NULL ? ry + (n * C + c) * L : NULL;
            float r1 = 0.f, r2 = 0.f;
            if (yr != NULL) {
#pragma omp simd reduction(+:r1, r2)
                for (l = 0; l < L; ++l) {
                    const float gl = relu_gate(yr[l], g[l]);
                    r1 += gl;
                    r2 += gl * (xr[l] - m);
                }
            } else {
#pragma omp simd reduction(+:r1, r2)
                for (l = 0; l < L; ++l) {
                    r1 += g[l];
                    r2 += g[l] * (xr[l] - m);
                }
            }
            sdy += r1;
            sdyx += r2;
        }
        dbeta[c] = (float)sdy;
        dgamma[c] = (float)(sdyx * is);
        if (dx == NULL)
            continue;
        {
            const float a = gamma[c] * is;
            /* dx = a*dy - a*dbeta/n - a*dgamma/n * xhat, xhat = (x - m) * is */
            const float b = training ? (float)(a * sdy * inv_n) : 0.f;
            const float e = training ? (float)(a * sdyx * is * is * inv_n) : 0.f;
            for (n = 0; n < N; ++n) {
                const float *g = dy + (n * C + c) * L, *xr = x + (n * C + c) * L;
                const float *yr = ry != NULL ? ry + (n * C + c) * L : NULL;
                float *d = dx + (n * C + c) * L;
                if (yr != NULL) {
#pragma omp simd
                    for (l = 0; l < L; ++l)
                        d[l] = a * relu_gate(yr[l], g[l]) - b - e * (xr[l] - m);
                } else {
#pragma omp simd
                    for (l = 0; l < L; ++l)
                        d[l] = a * g[l] - b - e * (xr[l] - m);
                }
            }
        }
    }
}

void dtnn_prelu_forward_f32(const float *x, float *y, int64_t N, int64_t C, int64_t L,
                            const float *alpha)
{
    int64_t c;
#pragma omp parallel for schedule(static) PAR_IF(N * C * L)
    for (c = 0; c < C; ++c) {
        const float a = alpha[c];
        int64_t n, l;
        for (n = 0; n < N; ++n) {
            const float *DTNN_RESTRICT xr = x + (n * C + c) * L;
            float *DTNN_RESTRICT yr = y + (n * C + c) * L;
#pragma omp simd
            for (l = 0; l < L; ++l) {
                const float v = xr[l];
                yr[l] = v * select_pos(v, 1.f, a);
            }
        }
    }
}

void dtnn_prelu_backward_f32(const float *dy, const float *x, float *dx, int64_t N,
                             int64_t C, int64_t L, const float *alpha, float *dalpha)
{
    int64_t c;
#pragma omp parallel for schedule(static) PAR_IF(N * C * L)
    for (c = 0; c < C; ++c) {
        const float a = alpha[c];
        double s = 0.0;
        int64_t n, l;
        for (n = 0; n < N; ++n) {
            const float *g = dy + (n * C + c) * L, *xr = x + (n * C + c) * L;
            float r = 0.f;
            if (dx != NULL) {
                float *d = dx + (n * C + c) * L;
#pragma omp simd reduction(+:r)
                for (l = 0; l < L; ++l) {
                    r += g[l] * xr[l] * select_pos(xr[l], 0.f, 1.f);
                    d[l] = g[l] * select_pos(xr[l], 1.f, a);
                }
            } else {
#pragma omp simd reduction(+:r)
                for (l = 0; l < L; ++l)
                    r += g[l] * xr[l] * select_pos(xr[l], 0.f, 1.f);
            }
            s += r;
        }
        dalpha[c] = (float)s;
    }
}

/* ReLU: element-wise, so the flat range is cut into fixed blocks (one thread's blocks
 * are contiguous under schedule(static)); no reductions, hence the same bits at any
 * thread count.  The masks are integer ANDs on the bit patterns (no per-element branch
 * without -march, see select_pos): forward keeps x where !(x <= 0) (NaN propagates,
 * like np.maximum), backward keeps dy where y > 0. */
#define RELU_BLOCK ((int64_t)16384)

void dtnn_relu_forward_f32(const float *x, float *y, int64_t n)
{
    const int64_t nb = (n + RELU_BLOCK - 1) / RELU_BLOCK;
    int64_t b;
#pragma omp parallel for schedule(static) PAR_IF(n)
    for (b = 0; b < nb; ++b) {
        const int64_t lo = b * RELU_BLOCK, hi = lo + RELU_BLOCK < n ? lo + RELU_BLOCK : n;
        const uint32_t *DTNN_RESTRICT xi = (const uint32_t *)x;
        uint32_t *DTNN_RESTRICT yi = (uint32_t *)y;
        int64_t i;
#pragma omp simd
        for (i = lo; i < hi; ++i)
            yi[i] = xi[i] & ((uint32_t)0 - (uint32_t)!(x[i] <= 0.f));
    }
}

void dtnn_relu_backward_f32(const float *dy, const float *y, float *dx, int64_t n)
{
    const int64_t nb = (n + RELU_BLOCK - 1) / RELU_BLOCK;
    int64_t b;
#pragma omp parallel for schedule(static) PAR_IF(n)
    for (b = 0; b < nb; ++b) {
        const int64_t lo = b * RELU_BLOCK, hi = lo + RELU_BLOCK < n ? lo + RELU_BLOCK : n;
        const uint32_t *DTNN_RESTRICT gi = (const uint32_t *)dy;
        uint32_t *DTNN_RESTRICT di = (uint32_t *)dx;
        int64_t i;
#pragma omp simd
        for (i = lo; i < hi; ++i)
            di[i] = gi[i] & ((uint32_t)0 - (uint32_t)(y[i] > 0.f));
    }
}

/* The bias gradient of a convolution: numpy's sum over axes (0, 2) is one thread and
 * took 0.8-3.1 ms per first-layer / 1x1 backward at batch 64, as long as the fused
 * weight-gradient kernel itself (benchmarks/results/fast_default.md).  One thread per
 * channel, float SIMD sums along a row, double across rows, like dtnn_bn_stats_f32. */
void dtnn_channel_sum_f32(const float *x, int64_t N, int64_t C, int64_t L, float *out)
{
    int64_t c;
#pragma omp parallel for schedule(static) PAR_IF(N * C * L)
    for (c = 0; c < C; ++c) {
        double s = 0.0;
        int64_t n, l;
        for (n = 0; n < N; ++n) {
            const float *row = x + (n * C + c) * L;
            float r = 0.f;
#pragma omp simd reduction(+:r)
            for (l = 0; l < L; ++l)
                r += row[l];
            s += r;
        }
        out[c] = (float)s;
    }
}
