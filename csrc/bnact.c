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
#include <stdlib.h>
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

/* The backward's row sums go into BN_LANES partial sums, element l of a row into
 * lane l % BN_LANES, in increasing l, then the lanes are added in order: a fixed order
 * (not the compiler's choice of vector width), so the fused BatchNorm + ReLU + max
 * pool backward, which visits only the pooled positions, adds the same terms in the
 * same order (the zeros it skips leave a sum unchanged) and gets the same bits. */
#define BN_LANES 16

static inline float lane_total(const float *a)
{
    float r = a[0];
    int j;
    for (j = 1; j < BN_LANES; ++j)
        r += a[j];
    return r;
}

/* Adds one row's sums of g and of g * (x - m) to the channel's *sdy and *sdyx: the
 * terms go into BN_LANES partial sums in the order above, then the lanes' totals are
 * added.  With yr != NULL, g is gated by the ReLU's output yr where it is read. */
static inline void row_sums(double *sdy, double *sdyx, const float *g, const float *yr,
                            const float *xr, float m, int64_t L)
{
    float a1[BN_LANES] = {0.f}, a2[BN_LANES] = {0.f};
    int64_t l0 = 0, j;
    if (yr != NULL) {
        for (; l0 + BN_LANES <= L; l0 += BN_LANES)
            for (j = 0; j < BN_LANES; ++j) {
                const float gl = relu_gate(yr[l0 + j], g[l0 + j]);
                a1[j] += gl;
                a2[j] += gl * (xr[l0 + j] - m);
            }
        for (j = 0; l0 + j < L; ++j) {
            const float gl = relu_gate(yr[l0 + j], g[l0 + j]);
            a1[j] += gl;
            a2[j] += gl * (xr[l0 + j] - m);
        }
    } else {
        for (; l0 + BN_LANES <= L; l0 += BN_LANES)
            for (j = 0; j < BN_LANES; ++j) {
                a1[j] += g[l0 + j];
                a2[j] += g[l0 + j] * (xr[l0 + j] - m);
            }
        for (j = 0; l0 + j < L; ++j) {
            a1[j] += g[l0 + j];
            a2[j] += g[l0 + j] * (xr[l0 + j] - m);
        }
    }
    *sdy += lane_total(a1);
    *sdyx += lane_total(a2);
}

/* dx = a*dy - a*dbeta/n - a*dgamma/n * xhat with xhat = (x - m) * is, written as
 * dx = a*g - b - e*(x - m); outside training (running statistics) b = e = 0. */
struct bn_dx {
    float a, b, e;
};

/* Stores the channel's dbeta and dgamma from its sums; with want_dx, returns dx's
 * coefficients (gamma is read only then). */
static inline struct bn_dx channel_grads(int64_t c, double sdy, double sdyx, float is,
                                         const float *gamma, double inv_n, int training,
                                         int want_dx, float *dgamma, float *dbeta)
{
    struct bn_dx k = {0.f, 0.f, 0.f};
    dbeta[c] = (float)sdy;
    dgamma[c] = (float)(sdyx * is);
    if (want_dx) {
        k.a = gamma[c] * is;
        k.b = training ? (float)(k.a * sdy * inv_n) : 0.f;
        k.e = training ? (float)(k.a * sdyx * is * is * inv_n) : 0.f;
    }
    return k;
}

/* One row of dx from its g (gated by yr where yr != NULL), as struct bn_dx says. */
static inline void dx_row(float *DTNN_RESTRICT d, const float *DTNN_RESTRICT g,
                          const float *DTNN_RESTRICT yr, const float *DTNN_RESTRICT xr,
                          float m, struct bn_dx k, int64_t L)
{
    int64_t l;
    if (yr != NULL) {
#pragma omp simd
        for (l = 0; l < L; ++l)
            d[l] = k.a * relu_gate(yr[l], g[l]) - k.b - k.e * (xr[l] - m);
    } else {
#pragma omp simd
        for (l = 0; l < L; ++l)
            d[l] = k.a * g[l] - k.b - k.e * (xr[l] - m);
    }
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
        struct bn_dx k;
        int64_t n;
        for (n = 0; n < N; ++n)
            row_sums(&sdy, &sdyx, dy + (n * C + c) * L,
                     ry != NULL ? ry + (n * C + c) * L : NULL, x + (n * C + c) * L, m, L);
        k = channel_grads(c, sdy, sdyx, is, gamma, inv_n, training, dx != NULL, dgamma,
                          dbeta);
        if (dx == NULL)
            continue;
        for (n = 0; n < N; ++n)
            dx_row(dx + (n * C + c) * L, dy + (n * C + c) * L,
                   ry != NULL ? ry + (n * C + c) * L : NULL, x + (n * C + c) * L, m, k, L);
    }
}

/* ---- BatchNorm + ReLU + 2x2 / stride-2 max pooling (training) ---------------------
 * Forward: the affine map and the ReLU per tap, the pool's maximum of the four, only
 * the pooled map and its argmax written (a quarter of the activation) -- the ReLU's
 * full-size output is never stored or read again.  The taps' values and the maximum's
 * rules are those of dtnn_bn_apply_relu_f32 followed by csrc/pool.c's 2x2 kernel (start
 * at -inf with argmax 0, a tap wins only if strictly greater, row-major), so the pooled
 * map and argmax are the same bits.  Rows and columns the windows do not cover (odd H
 * or W) are not pooled, as in the pool kernel. */
static inline float relu_keep(float v)
{
    uint32_t vb;
    float f;
    memcpy(&vb, &v, sizeof vb);
    vb &= (uint32_t)0 - (uint32_t)!(v <= 0.f);
    memcpy(&f, &vb, sizeof f);
    return f;
}

void dtnn_bn_relu_pool2_f32(const float *x, float *y, int32_t *argmax, int64_t N,
                            int64_t C, int64_t H, int64_t W, const float *scale,
                            const float *shift)
{
    const int64_t Ho = H / 2, Wo = W / 2, L = H * W, Lo = Ho * Wo;
    int64_t c;
#pragma omp parallel for schedule(static) PAR_IF(N * C * L)
    for (c = 0; c < C; ++c) {
        const float a = scale[c], b = shift[c];
        int64_t n, ho, wo;
        for (n = 0; n < N; ++n) {
            const float *DTNN_RESTRICT xp = x + (n * C + c) * L;
            float *DTNN_RESTRICT yp = y + (n * C + c) * Lo;
            int32_t *DTNN_RESTRICT ap = argmax + (n * C + c) * Lo;
            for (ho = 0; ho < Ho; ++ho) {
                const float *r0 = xp + 2 * ho * W, *r1 = r0 + W;
                const int32_t k0 = (int32_t)(2 * ho * W), k1 = (int32_t)(2 * ho * W + W);
#pragma omp simd
                for (wo = 0; wo < Wo; ++wo) {
                    const int32_t w0 = (int32_t)(2 * wo);
                    const float t0 = relu_keep(r0[w0] * a + b);
                    const float t1 = relu_keep(r0[w0 + 1] * a + b);
                    const float t2 = relu_keep(r1[w0] * a + b);
                    const float t3 = relu_keep(r1[w0 + 1] * a + b);
                    float m = -INFINITY;
                    int32_t k = 0;
                    k = t0 > m ? k0 + w0 : k;
                    m = t0 > m ? t0 : m;
                    k = t1 > m ? k0 + w0 + 1 : k;
                    m = t1 > m ? t1 : m;
                    k = t2 > m ? k1 + w0 : k;
                    m = t2 > m ? t2 : m;
                    k = t3 > m ? k1 + w0 + 1 : k;
                    m = t3 > m ? t3 : m;
                    yp[ho * Wo + wo] = m;
                    ap[ho * Wo + wo] = k;
                }
            }
        }
    }
}

/* Its backward: the BatchNorm + ReLU backward of the pool's scattered gradient.  Per
 * (image, channel) row the gated gradient (the pool's gradient at its argmax, gated by
 * the ReLU, whose output there is the pooled y; zero elsewhere) is built in a row-sized
 * buffer that stays in cache, instead of the pool's full-size gradient and the ReLU's
 * full-size output in memory; the sums and dx then run over it with the same
 * expressions and lane order as bn_backward_gated: the same bits as the pool's backward
 * followed by BatchNorm+ReLU's.  Returns 0, or -1 if a buffer could not be allocated. */
static void gated_row(float *DTNN_RESTRICT buf, const float *DTNN_RESTRICT g,
                      const float *DTNN_RESTRICT yp, const int32_t *DTNN_RESTRICT ap,
                      int64_t L, int64_t Lo)
{
    int64_t i;
    memset(buf, 0, (size_t)L * sizeof(float));
    for (i = 0; i < Lo; ++i) {
        const int64_t k = ap[i];
        if (k >= 0 && k < L)
            buf[k] = relu_gate(yp[i], 0.f + g[i]);
    }
}

/* a channel's gated rows are kept for the dx pass when they fit in this many floats
 * (1 MB: L2-sized), else rebuilt row by row */
#define POOL2_KEEP_FLOATS ((int64_t)262144)

int dtnn_bn_relu_pool2_backward_f32(const float *dy, const float *y, const int32_t *argmax,
                                    const float *x, float *dx, int64_t N, int64_t C,
                                    int64_t H, int64_t W, const float *mean,
                                    const float *inv_std, const float *gamma,
                                    float *dgamma, float *dbeta)
{
    const int64_t L = H * W, Lo = (H / 2) * (W / 2);
    const int keep = N * L <= POOL2_KEEP_FLOATS;
    const double inv_n = 1.0 / (double)(N * L);
    int failed = 0;
#pragma omp parallel PAR_IF(N * C * L) reduction(|:failed)
    {
        float *buf = (float *)malloc((size_t)(keep ? N * L : L) * sizeof(float));
        int64_t c;
        if (buf == NULL)
            failed = 1;
#pragma omp for schedule(static)
        for (c = 0; c < C; ++c) {
            const float m = mean[c], is = inv_std[c];
            double sdy = 0.0, sdyx = 0.0;
            struct bn_dx k;
            int64_t n;
            if (buf == NULL)
                continue;
            for (n = 0; n < N; ++n) {
                float *DTNN_RESTRICT gr = keep ? buf + n * L : buf;
                gated_row(gr, dy + (n * C + c) * Lo, y + (n * C + c) * Lo,
                          argmax + (n * C + c) * Lo, L, Lo);
                row_sums(&sdy, &sdyx, gr, NULL, x + (n * C + c) * L, m, L);
            }
            k = channel_grads(c, sdy, sdyx, is, gamma, inv_n, 1, dx != NULL, dgamma, dbeta);
            if (dx == NULL)
                continue;
            for (n = 0; n < N; ++n) {
                const float *gr = keep ? buf + n * L : buf;
                if (!keep)
                    gated_row(buf, dy + (n * C + c) * Lo, y + (n * C + c) * Lo,
                              argmax + (n * C + c) * Lo, L, Lo);
                dx_row(dx + (n * C + c) * L, gr, NULL, x + (n * C + c) * L, m, k, L);
            }
        }
        free(buf);
    }
    return failed ? -1 : 0;
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
