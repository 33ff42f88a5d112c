/*
 * Inference kernels of the fused plan (see infer.h).
 *
 * Two direct convolutions for the layers where im2col + GEMM spends more on its set-up
 * than on arithmetic (batch 1, few channels, small images -- a pruned network):
 *
 *  pixel kernel   vectorised over output pixels: a block of PV*VW consecutive outputs
 *                 of 8 channels lives in PV*8 vector accumulators; per tap, PV vector
 *                 loads of the zero-padded image and 8 broadcast filter values.  The
 *                 outputs are computed on the padded width, so a run of consecutive
 *                 outputs reads consecutive inputs whatever the row length (the few
 *                 outputs in the padding columns are computed and dropped).
 *  channel kernel vectorised over output channels: one output pixel, up to 4 vectors
 *                 of channels; taps outside the image are skipped, so it needs no
 *                 padded copy and handles any stride (tiny images, strided layers,
 *                 dense layers).
 *
 * Both apply bias (a folded BatchNorm's shift included) and the activation to the
 * accumulators before the one store of each output.  Each body is compiled for
 * AVX-512 (16-float vectors), AVX2 + FMA (8) and the baseline (4), chosen by
 * dtnn_isa_active() at every call.
 */
#include <math.h>
#include <string.h>

#include "dtnn_isa.h"
#include "infer.h"

#if DTNN_X86
#include <immintrin.h>
#endif

static inline __attribute__((always_inline)) float act_apply(float v, int act, float alpha)
{
    switch (act) {
    case DTNN_ACT_RELU: return v > 0.0f ? v : 0.0f;
    case DTNN_ACT_RELU6: return v > 0.0f ? (v < 6.0f ? v : 6.0f) : 0.0f;
    case DTNN_ACT_PRELU: return v > 0.0f ? v : v * alpha;
    default: return v;
    }
}

/* taps t in [0, T) with 0 <= base + t*d < n  ->  [*lo, *hi) */
static inline __attribute__((always_inline)) void tap_range(int64_t base, int64_t n, int64_t T,
                                                            int64_t d, int64_t *lo, int64_t *hi)
{
    int64_t l = 0, h = T;
    if (base < 0) l = (-base + d - 1) / d;
    if (base + (T - 1) * d >= n) h = (n - 1 - base) < 0 ? 0 : (n - 1 - base) / d + 1;
    if (l > h) l = h;
    *lo = l;
    *hi = h;
}

#if DTNN_X86
#define VW 16
#define PV 2
#define SFX 16
#define TGT DTNN_TARGET_AVX512
#include "infer_tmpl.h"
#undef VW
#undef PV
#undef SFX
#undef TGT
#define VW 8
#define PV 1
#define SFX 8
#define TGT DTNN_TARGET_AVX2
#include "infer_tmpl.h"
#undef VW
#undef PV
#undef SFX
#undef TGT
#endif
#define VW 4
#define PV 1
#define SFX 4
#define TGT
#include "infer_tmpl.h"
#undef VW
#undef PV
#undef SFX
#undef TGT

/* pixel blocks are PV*VW outputs; the widest path (AVX-512, 2 x 16) sets the span */
#define PX_BLOCK_MAX 32

int64_t dtnn_infer_px_span(int64_t Ho, int64_t Wp)
{
    return (Ho * Wp + PX_BLOCK_MAX - 1) / PX_BLOCK_MAX * PX_BLOCK_MAX;
}

int64_t dtnn_infer_px_slack(int64_t S, int64_t dw)
{
    return PX_BLOCK_MAX + (S - 1) * dw + 16;
}

#define PX_PARAMS (const float *xp, const float *wb, const float *bias, const float *alpha, \
                   int act, float *y, int64_t C, int64_t plane, int64_t Wp, int64_t K,     \
                   int64_t R, int64_t S, int64_t dh, int64_t dw, int64_t Ho, int64_t Wo,    \
                   int64_t kb, int64_t q_lo, int64_t q_hi)
#define PX_RUN(sfx, step)                                                                \
    for (int64_t q0 = q_lo; q0 < q_hi; q0 += (step))                                     \
        px_block_##sfx(xp, wb, bias, alpha, act, y, C, plane, Wp, K, R, S, dh, dw, Ho, Wo, \
                       kb, q0)

static void px_gen PX_PARAMS { PX_RUN(4, 4); }
#if DTNN_X86
DTNN_TARGET_AVX2 static void px_avx2 PX_PARAMS { PX_RUN(8, 8); }
DTNN_TARGET_AVX512 static void px_avx512 PX_PARAMS { PX_RUN(16, 32); }
#endif

void dtnn_infer_conv_px_f32(const float *x, float *xpad, const float *wpk,
                            const float *bias, const float *alpha, int act, float *y,
                            int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                            int64_t R, int64_t S, int64_t ph, int64_t pw,
                            int64_t dh, int64_t dw, int64_t Ho, int64_t Wo)
{
    const int64_t Hp = H + 2 * ph, Wp = W + 2 * pw, plane = Hp * Wp;
    const int64_t span = dtnn_infer_px_span(Ho, Wp), P = Ho * Wo, T = C * R * S;
    const int64_t nkb = (K + DTNN_INFER_PX_KB - 1) / DTNN_INFER_PX_KB;
    const int level = dtnn_isa_active();
    /* interior of every image's padded copy (the border was zeroed once) */
    for (int64_t nc = 0; nc < N * C; ++nc) {
        const float *src = x + nc * H * W;
        float *d = xpad + nc * plane + ph * Wp + pw;
        if (pw == 0)
            memcpy(d, src, sizeof(float) * H * W);
        else
            for (int64_t h = 0; h < H; ++h) memcpy(d + h * Wp, src + h * W, sizeof(float) * W);
    }
    /* work items: (image, channel block, slice of the outputs), 32-aligned slices */
    const int64_t slices = span / PX_BLOCK_MAX;
    const int64_t per = slices > 4 ? (slices + 3) / 4 : 1;   /* up to 4 slices a block */
    const int64_t nsl = (slices + per - 1) / per;
    const int64_t jobs = N * nkb * nsl;
#pragma omp parallel for schedule(static) if (N * K * P * T > 400000)
    for (int64_t job = 0; job < jobs; ++job) {
        const int64_t n = job / (nkb * nsl), rem = job % (nkb * nsl);
        const int64_t kb = rem / nsl, sl = rem % nsl;
        const int64_t q_lo = sl * per * PX_BLOCK_MAX;
        const int64_t q_hi = (sl + 1) * per * PX_BLOCK_MAX < span ? (sl + 1) * per * PX_BLOCK_MAX
                                                                : span;
        const float *xp = xpad + n * C * plane;
        const float *wb = wpk + kb * T * DTNN_INFER_PX_KB;
        float *yn = y + n * K * P;
#if DTNN_X86
        if (level >= DTNN_ISA_AVX512)
            px_avx512(xp, wb, bias, alpha, act, yn, C, plane, Wp, K, R, S, dh, dw, Ho, Wo, kb,
                      q_lo, q_hi);
        else if (level == DTNN_ISA_AVX2)
            px_avx2(xp, wb, bias, alpha, act, yn, C, plane, Wp, K, R, S, dh, dw, Ho, Wo, kb,
                    q_lo, q_hi);
        else
#endif
            px_gen(xp, wb, bias, alpha, act, yn, C, plane, Wp, K, R, S, dh, dw, Ho, Wo, kb,
                   q_lo, q_hi);
    }
    (void)level;
}

#define CH_PARAMS (const float *xn, const float *wck, const float *bias, const float *alpha, \
                   int act, float *yn, int64_t C, int64_t H, int64_t W, int64_t K,          \
                   int64_t Kp, int64_t R, int64_t S, int64_t sh, int64_t sw, int64_t ph,    \
                   int64_t pw, int64_t dh, int64_t dw, int64_t Ho, int64_t Wo,              \
                   int64_t p_lo, int64_t p_hi)
#define CH_ARGS (xn, wck, bias, alpha, act, yn, C, H, W, K, Kp, R, S, sh, sw, ph, pw, dh, dw, \
                 Ho, Wo, p_lo, p_hi)
static void ch_gen CH_PARAMS { ch_image_4 CH_ARGS; }
#if DTNN_X86
DTNN_TARGET_AVX2 static void ch_avx2 CH_PARAMS { ch_image_8 CH_ARGS; }
DTNN_TARGET_AVX512 static void ch_avx512 CH_PARAMS { ch_image_16 CH_ARGS; }
#endif

void dtnn_infer_conv_ch_f32(const float *x, const float *wck, const float *bias,
                            const float *alpha, int act, float *y,
                            int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                            int64_t Kp, int64_t R, int64_t S, int64_t sh, int64_t sw,
                            int64_t ph, int64_t pw, int64_t dh, int64_t dw,
                            int64_t Ho, int64_t Wo)
{
    const int64_t P = Ho * Wo;
    const int64_t per = P > 8 ? (P + 7) / 8 : P;     /* pixels per work item */
    const int64_t nsl = (P + per - 1) / per, jobs = N * nsl;
    const int level = dtnn_isa_active();
#pragma omp parallel for schedule(static) if (N * P * K * C * R * S > 400000)
    for (int64_t job = 0; job < jobs; ++job) {
        const int64_t n = job / nsl, sl = job % nsl;
        const int64_t p_lo = sl * per, p_hi = p_lo + per < P ? p_lo + per : P;
        const float *xn = x + n * C * H * W;
        float *yn = y + n * K * P;
#if DTNN_X86
        if (level >= DTNN_ISA_AVX512)
            ch_avx512(xn, wck, bias, alpha, act, yn, C, H, W, K, Kp, R, S, sh, sw, ph, pw, dh,
                      dw, Ho, Wo, p_lo, p_hi);
        else if (level == DTNN_ISA_AVX2)
            ch_avx2(xn, wck, bias, alpha, act, yn, C, H, W, K, Kp, R, S, sh, sw, ph, pw, dh,
                    dw, Ho, Wo, p_lo, p_hi);
        else
#endif
            ch_gen(xn, wck, bias, alpha, act, yn, C, H, W, K, Kp, R, S, sh, sw, ph, pw, dh,
                   dw, Ho, Wo, p_lo, p_hi);
    }
    (void)level;
}

void dtnn_infer_affine_act_f32(const float *x, float *y, int64_t N, int64_t C, int64_t P,
                               const float *scale, const float *shift, int act,
                               const float *alpha)
{
#pragma omp parallel for schedule(static) if (N * C * P > 1 << 18)
    for (int64_t nc = 0; nc < N * C; ++nc) {
        const int64_t c = nc % C;
        const float sc = scale ? scale[c] : 1.0f, sh = shift ? shift[c] : 0.0f;
        const float a = act == DTNN_ACT_PRELU ? alpha[c] : 0.0f;
        const float *xs = x + nc * P;
        float *ys = y + nc * P;
        switch (act) {   /* one loop per activation, so each vectorises */
        case DTNN_ACT_RELU:
            for (int64_t p = 0; p < P; ++p) {
                const float v = xs[p] * sc + sh;
                ys[p] = v > 0.0f ? v : 0.0f;
            }
            break;
        case DTNN_ACT_RELU6:
            for (int64_t p = 0; p < P; ++p) {
                const float v = xs[p] * sc + sh;
                ys[p] = v > 0.0f ? (v < 6.0f ? v : 6.0f) : 0.0f;
            }
            break;
        case DTNN_ACT_PRELU:
            for (int64_t p = 0; p < P; ++p) {
                const float v = xs[p] * sc + sh;
                ys[p] = v > 0.0f ? v : v * a;
            }
            break;
        default:
            for (int64_t p = 0; p < P; ++p) ys[p] = xs[p] * sc + sh;
        }
    }
}

void dtnn_infer_maxpool_f32(const float *x, float *y, int64_t N, int64_t C, int64_t H,
                            int64_t W, int64_t R, int64_t S, int64_t sh, int64_t sw,
                            int64_t ph, int64_t pw, int64_t Ho, int64_t Wo)
{
#pragma omp parallel for schedule(static) if (N * C * Ho * Wo * R * S > 1 << 18)
    for (int64_t nc = 0; nc < N * C; ++nc) {
        const float *xp = x + nc * H * W;
        float *yp = y + nc * Ho * Wo;
        if (R == 2 && S == 2 && sh == 2 && sw == 2 && ph == 0 && pw == 0) {
            for (int64_t ho = 0; ho < Ho; ++ho) {
                const float *r0 = xp + 2 * ho * W, *r1 = r0 + W;
                for (int64_t wo = 0; wo < Wo; ++wo) {
                    /* the reference's order and rule: a tap wins if strictly greater */
                    float m = -INFINITY;
                    m = r0[2 * wo] > m ? r0[2 * wo] : m;
                    m = r0[2 * wo + 1] > m ? r0[2 * wo + 1] : m;
                    m = r1[2 * wo] > m ? r1[2 * wo] : m;
                    m = r1[2 * wo + 1] > m ? r1[2 * wo + 1] : m;
                    yp[ho * Wo + wo] = m;
                }
            }
            continue;
        }
        for (int64_t ho = 0; ho < Ho; ++ho) {
            int64_t r_lo, r_hi;
            tap_range(ho * sh - ph, H, R, 1, &r_lo, &r_hi);
            for (int64_t wo = 0; wo < Wo; ++wo) {
                int64_t s_lo, s_hi;
                tap_range(wo * sw - pw, W, S, 1, &s_lo, &s_hi);
                float m = -INFINITY;
                for (int64_t r = r_lo; r < r_hi; ++r)
                    for (int64_t s = s_lo; s < s_hi; ++s) {
                        const float v = xp[(ho * sh - ph + r) * W + wo * sw - pw + s];
                        if (v > m) m = v;
                    }
                yp[ho * Wo + wo] = m;
            }
        }
    }
}
