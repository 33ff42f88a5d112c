/*
 * Max pooling forward/backward for NCHW float32 tensors, parallel over the N*C
 * planes (a plane's outputs, and in backward its input gradient, belong to one
 * thread only).
 *
 * Tie/padding rules (shared with the numpy twin): the running maximum starts at
 * -inf with argmax 0 and a tap replaces it only if strictly greater, scanning the
 * window in row-major order.  Padding taps are skipped, which is the same as
 * reading -inf: they can never win.  NaN compares false, so it never wins either.
 */
#include <math.h>
#include <string.h>

#include "dtnn_kernels.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* 2x2 window, stride 2, no padding: every tap is inside the image. */
static void pool_plane_2x2s2(const float *DTNN_RESTRICT xp, float *DTNN_RESTRICT yp,
                             int32_t *DTNN_RESTRICT ap, int64_t W,
                             int64_t Ho, int64_t Wo)
{
    int64_t ho, wo;
    for (ho = 0; ho < Ho; ++ho) {
        const int64_t h0 = 2 * ho;
        const float *DTNN_RESTRICT r0 = xp + h0 * W;
        const float *DTNN_RESTRICT r1 = r0 + W;
        float *DTNN_RESTRICT yr = yp + ho * Wo;
        int32_t *DTNN_RESTRICT ar = ap + ho * Wo;
        const int32_t base0 = (int32_t)(h0 * W);
        const int32_t base1 = (int32_t)(h0 * W + W);
        for (wo = 0; wo < Wo; ++wo) {
            const int32_t w0 = (int32_t)(2 * wo);
            const float a = r0[w0], b = r0[w0 + 1], c = r1[w0], d = r1[w0 + 1];
            float m = -INFINITY;
            int32_t k = 0;
            if (a > m) { m = a; k = base0 + w0; }
            if (b > m) { m = b; k = base0 + w0 + 1; }
            if (c > m) { m = c; k = base1 + w0; }
            if (d > m) { m = d; k = base1 + w0 + 1; }
            yr[wo] = m;
            ar[wo] = k;
        }
    }
}

static void pool_plane_generic(const float *DTNN_RESTRICT xp, float *DTNN_RESTRICT yp,
                               int32_t *DTNN_RESTRICT ap,
                               int64_t H, int64_t W, int64_t R, int64_t S,
                               int64_t stride_h, int64_t stride_w,
                               int64_t pad_h, int64_t pad_w,
                               int64_t Ho, int64_t Wo)
{
    int64_t ho, wo, r, s;
    for (ho = 0; ho < Ho; ++ho) {
        const int64_t h0 = ho * stride_h - pad_h;
        const int64_t r_lo = (h0 < 0) ? -h0 : 0;
        const int64_t r_hi = (H - h0 < R) ? H - h0 : R;
        for (wo = 0; wo < Wo; ++wo) {
            const int64_t w0 = wo * stride_w - pad_w;
            const int64_t s_lo = (w0 < 0) ? -w0 : 0;
            const int64_t s_hi = (W - w0 < S) ? W - w0 : S;
            float m = -INFINITY;
            int64_t k = 0;
            for (r = r_lo; r < r_hi; ++r) {
                const int64_t row = (h0 + r) * W + w0;
                for (s = s_lo; s < s_hi; ++s) {
                    const float v = xp[row + s];
                    if (v > m) { m = v; k = row + s; }
                }
            }
            yp[ho * Wo + wo] = m;
            ap[ho * Wo + wo] = (int32_t)k;
        }
    }
}

void dtnn_maxpool_fwd_f32(const float *DTNN_RESTRICT x, float *DTNN_RESTRICT y,
                          int32_t *DTNN_RESTRICT argmax,
                          int64_t N, int64_t C, int64_t H, int64_t W,
                          int64_t R, int64_t S,
                          int64_t stride_h, int64_t stride_w,
                          int64_t pad_h, int64_t pad_w,
                          int64_t Ho, int64_t Wo)
{
    const int64_t planes = N * C;
    const int64_t plane_in = H * W;
    const int64_t plane_out = Ho * Wo;
    const int fast = (R == 2 && S == 2 && stride_h == 2 && stride_w == 2 &&
                      pad_h == 0 && pad_w == 0);
    int64_t p;

#ifdef _OPENMP
#pragma omp parallel for schedule(static) \
    if (planes * plane_out * R * S >= DTNN_OMP_MIN_WORK && planes > 1)
#endif
    for (p = 0; p < planes; ++p) {
        const float *xp = x + p * plane_in;
        float *yp = y + p * plane_out;
        int32_t *ap = argmax + p * plane_out;
        if (fast)
            pool_plane_2x2s2(xp, yp, ap, W, Ho, Wo);
        else
            pool_plane_generic(xp, yp, ap, H, W, R, S, stride_h, stride_w,
                               pad_h, pad_w, Ho, Wo);
    }
}

int64_t dtnn_maxpool_bwd_f32(const float *DTNN_RESTRICT dy,
                             const int32_t *DTNN_RESTRICT argmax,
                             float *DTNN_RESTRICT dx,
                             int64_t planes, int64_t L, int64_t HW)
{
    int64_t bad = 0;
    int64_t p;

#ifdef _OPENMP
#pragma omp parallel for schedule(static) reduction(+ : bad) \
    if ((planes * (L + HW)) >= DTNN_OMP_MIN_WORK && planes > 1)
#endif
    for (p = 0; p < planes; ++p) {
        const float *DTNN_RESTRICT g = dy + p * L;
        const int32_t *DTNN_RESTRICT a = argmax + p * L;
        float *DTNN_RESTRICT d = dx + p * HW;
        int64_t i;
        memset(d, 0, (size_t)HW * sizeof(float));
        for (i = 0; i < L; ++i) {
            const int64_t k = a[i];
            if (k < 0 || k >= HW) {
                ++bad;
                continue;
            }
            d[k] += g[i];
        }
    }
    return bad;
}
