/*
 * Direct convolution for small layers (see direct.h).
 *
 * forward       parallel over (n, k) output planes
 * backward-data parallel over (n, c) input planes (scatter of dy through w)
 * backward-w    parallel over (k, c) filter slices (reduction over n and pixels)
 * Each work item owns its output, so there are no races and no atomics.  The inner
 * loop runs over a contiguous range of output columns whose taps are inside the
 * image, so it vectorises for stride 1.
 */
#include <string.h>

#include "direct.h"
#include "dtnn_isa.h"

/* Each per-plane body is compiled three times (baseline, AVX2 + FMA, AVX-512) so the
 * vectoriser gets the wide registers; the clone runs by dtnn_isa_active(), so DTNN_ISA
 * can force a narrower one (tests, benchmarks). */
#define BODY static inline __attribute__((always_inline))
#if DTNN_X86
#define DIRECT_CLONES(name, params, args)                                       \
    static void name##_gen params { name##_body args; }                         \
    DTNN_TARGET_AVX2 static void name##_avx2 params { name##_body args; }       \
    DTNN_TARGET_AVX512 static void name##_avx512 params { name##_body args; }   \
    static void name params                                                     \
    {                                                                           \
        const int level = dtnn_isa_active();                                    \
        if (level >= DTNN_ISA_AVX512)                                           \
            name##_avx512 args;                                                 \
        else if (level == DTNN_ISA_AVX2)                                        \
            name##_avx2 args;                                                   \
        else                                                                    \
            name##_gen args;                                                    \
    }
#else
#define DIRECT_CLONES(name, params, args) static void name params { name##_body args; }
#endif

/* outputs o in [0, n_out) with 0 <= o*stride + off < n_in  ->  [*lo, *hi) */
static inline void vrange(int64_t n_out, int64_t n_in, int64_t stride, int64_t off,
                          int64_t *lo, int64_t *hi)
{
    int64_t l = 0, h;
    if (off < 0) l = (-off + stride - 1) / stride;
    if (n_in - 1 - off < 0) h = 0;
    else h = (n_in - 1 - off) / stride + 1;
    if (h > n_out) h = n_out;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

#define FWD_PARAMS (const float *x, const float *wk, float b, float *yp, int64_t Cg, \
                    int64_t H, int64_t W, int64_t R, int64_t S, int64_t sh, int64_t sw, \
                    int64_t ph, int64_t pw, int64_t dh, int64_t dw, int64_t Ho, int64_t Wo)
#define FWD_ARGS (x, wk, b, yp, Cg, H, W, R, S, sh, sw, ph, pw, dh, dw, Ho, Wo)
BODY void fwd_plane_body FWD_PARAMS
{
    for (int64_t i = 0; i < Ho * Wo; ++i) yp[i] = b;
    for (int64_t c = 0; c < Cg; ++c) {
        const float *xc = x + c * H * W;
        for (int64_t r = 0; r < R; ++r) {
            int64_t hlo, hhi;
            vrange(Ho, H, sh, r * dh - ph, &hlo, &hhi);
            for (int64_t s = 0; s < S; ++s) {
                const float wv = wk[(c * R + r) * S + s];
                int64_t wlo, whi;
                const int64_t off = s * dw - pw;
                vrange(Wo, W, sw, off, &wlo, &whi);
                for (int64_t ho = hlo; ho < hhi; ++ho) {
                    const float *xr = xc + (ho * sh + r * dh - ph) * W + off;
                    float *yr = yp + ho * Wo;
                    if (sw == 1)
                        for (int64_t wo = wlo; wo < whi; ++wo) yr[wo] += wv * xr[wo];
                    else
                        for (int64_t wo = wlo; wo < whi; ++wo) yr[wo] += wv * xr[wo * sw];
                }
            }
        }
    }
}

DIRECT_CLONES(fwd_plane, FWD_PARAMS, FWD_ARGS)

void dtnn_direct_fwd_f32(const float *x, const float *w, const float *bias, float *y,
                         int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                         int64_t R, int64_t S, int64_t sh, int64_t sw, int64_t ph,
                         int64_t pw, int64_t dh, int64_t dw, int64_t G, int64_t Ho,
                         int64_t Wo)
{
    const int64_t Cg = C / G, Kg = K / G;
#pragma omp parallel for schedule(dynamic, 1) if (N * K * Ho * Wo * Cg * R * S > 65536)
    for (int64_t job = 0; job < N * K; ++job) {
        const int64_t n = job / K, k = job % K, g = k / Kg;
        fwd_plane(x + (n * C + g * Cg) * H * W, w + k * Cg * R * S, bias ? bias[k] : 0.0f,
                  y + job * Ho * Wo, Cg, H, W, R, S, sh, sw, ph, pw, dh, dw, Ho, Wo);
    }
}

#define BWD_PARAMS (const float *dyn, const float *w, float *dxp, int64_t c, int64_t Cg, \
                    int64_t Kg, int64_t g, int64_t H, int64_t W, int64_t R, int64_t S, \
                    int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dw, \
                    int64_t Ho, int64_t Wo)
#define BWD_ARGS (dyn, w, dxp, c, Cg, Kg, g, H, W, R, S, sh, sw, ph, pw, dh, dw, Ho, Wo)
BODY void bwd_data_plane_body BWD_PARAMS
{
    const int64_t cl = c - g * Cg;
    memset(dxp, 0, sizeof(float) * H * W);
    for (int64_t kk = 0; kk < Kg; ++kk) {
        const int64_t k = g * Kg + kk;
        const float *dyk = dyn + k * Ho * Wo;
        for (int64_t r = 0; r < R; ++r) {
            int64_t hlo, hhi;
            vrange(Ho, H, sh, r * dh - ph, &hlo, &hhi);
            for (int64_t s = 0; s < S; ++s) {
                const float wv = w[((k * Cg + cl) * R + r) * S + s];
                int64_t wlo, whi;
                const int64_t off = s * dw - pw;
                vrange(Wo, W, sw, off, &wlo, &whi);
                for (int64_t ho = hlo; ho < hhi; ++ho) {
                    float *xr = dxp + (ho * sh + r * dh - ph) * W + off;
                    const float *yr = dyk + ho * Wo;
                    if (sw == 1)
                        for (int64_t wo = wlo; wo < whi; ++wo) xr[wo] += wv * yr[wo];
                    else
                        for (int64_t wo = wlo; wo < whi; ++wo) xr[wo * sw] += wv * yr[wo];
                }
            }
        }
    }
}

DIRECT_CLONES(bwd_data_plane, BWD_PARAMS, BWD_ARGS)

void dtnn_direct_bwd_data_f32(const float *dy, const float *w, float *dx, int64_t N,
                              int64_t C, int64_t H, int64_t W, int64_t K, int64_t R,
                              int64_t S, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                              int64_t dh, int64_t dw, int64_t G, int64_t Ho, int64_t Wo)
{
    const int64_t Cg = C / G, Kg = K / G;
#pragma omp parallel for schedule(dynamic, 1) if (N * K * Ho * Wo * Cg * R * S > 65536)
    for (int64_t job = 0; job < N * C; ++job) {
        const int64_t n = job / C, c = job % C, g = c / Cg;
        bwd_data_plane(dy + n * K * Ho * Wo, w, dx + job * H * W, c, Cg, Kg, g, H, W, R, S,
                       sh, sw, ph, pw, dh, dw, Ho, Wo);
    }
}

#define BWW_PARAMS (const float *dy, const float *x, float *out, int64_t N, int64_t k, \
                    int64_t c, int64_t C, int64_t K, int64_t H, int64_t W, int64_t R, \
                    int64_t S, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, \
                    int64_t dw, int64_t Ho, int64_t Wo)
#define BWW_ARGS (dy, x, out, N, k, c, C, K, H, W, R, S, sh, sw, ph, pw, dh, dw, Ho, Wo)
BODY void bwd_w_slice_body BWW_PARAMS
{
    for (int64_t r = 0; r < R; ++r) {
        int64_t hlo, hhi;
        vrange(Ho, H, sh, r * dh - ph, &hlo, &hhi);
        for (int64_t s = 0; s < S; ++s) {
            int64_t wlo, whi;
            const int64_t off = s * dw - pw;
            vrange(Wo, W, sw, off, &wlo, &whi);
            float acc = 0.0f;
            for (int64_t n = 0; n < N; ++n) {
                const float *xc = x + (n * C + c) * H * W;
                const float *dyk = dy + (n * K + k) * Ho * Wo;
                for (int64_t ho = hlo; ho < hhi; ++ho) {
                    const float *xr = xc + (ho * sh + r * dh - ph) * W + off;
                    const float *yr = dyk + ho * Wo;
                    float a = 0.0f;
                    if (sw == 1)
                        for (int64_t wo = wlo; wo < whi; ++wo) a += yr[wo] * xr[wo];
                    else
                        for (int64_t wo = wlo; wo < whi; ++wo) a += yr[wo] * xr[wo * sw];
                    acc += a;
                }
            }
            out[r * S + s] = acc;
        }
    }
}

DIRECT_CLONES(bwd_w_slice, BWW_PARAMS, BWW_ARGS)

void dtnn_direct_bwd_weights_f32(const float *dy, const float *x, float *dwt, int64_t N,
                                 int64_t C, int64_t H, int64_t W, int64_t K, int64_t R,
                                 int64_t S, int64_t sh, int64_t sw, int64_t ph,
                                 int64_t pw, int64_t dh, int64_t dw, int64_t G,
                                 int64_t Ho, int64_t Wo)
{
    const int64_t Cg = C / G, Kg = K / G;
#pragma omp parallel for schedule(dynamic, 1) if (N * K * Ho * Wo * Cg * R * S > 65536)
    for (int64_t job = 0; job < K * Cg; ++job) {
        const int64_t k = job / Cg, cl = job % Cg, g = k / Kg;
        bwd_w_slice(dy, x, dwt + job * R * S, N, k, g * Cg + cl, C, K, H, W, R, S, sh, sw,
                    ph, pw, dh, dw, Ho, Wo);
    }
}
