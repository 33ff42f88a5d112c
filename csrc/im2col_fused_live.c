/* ==================================================================================
 * Fused convolution kernels on blocks of small images with the images innermost
 * ("live-tap blocks"), computing only the products that read real pixels.
 *
 * A 3x3 convolution with padding 1 on 3x3 images reads padding in 32 of its 81
 * (output pixel, tap) products, on 7x7 images in 18 %.  The channel-major blocks of
 * im2col_fused.c compute them all: a micro-tile's 6 output pixels are neighbours in
 * one image, each with its own set of taps that read real pixels.  Here a block of
 * nb images is laid out [c][Hp][Wp][n] (n innermost, padded to nbp, a multiple of 6,
 * with zero images) and output pixel q = p * nbp + n (p = ho * Wo + wo): a
 * micro-tile is one output position p in 6 images, so all its pixels share one set
 * of live taps.  The reduction runs tap-major (row j = tap t * Cg + channel i, W^T
 * packed that way), so a tap is a contiguous range of rows, and a tile skips every
 * chunk of a tap that reads only padding for its position.  Backward-weights runs its
 * (channel, tap) micro-tiles six channels of one tap at a time and sums, per tile,
 * only the pixel runs where that tap reads real pixels (per output row, the live
 * columns; consecutive runs merged).
 *
 * Same micro-tiles as im2col_fused.c (ops->fw_tiles, ops->bw_tile, ops->tr_block,
 * ops->store_y: the AVX-512 and AVX2 paths), same workspace (a block here holds at
 * most as many images as there), same thread split (every output element computed by
 * one thread in a fixed order: results do not depend on the thread count).  Each
 * output's sum runs over the same products as there minus the zero ones, in tap-major
 * instead of channel-major order: the results differ from the channel-major blocks'
 * by rounding only.
 * ================================================================================== */
#include "im2col_fused_ops.h"

#include <stdlib.h>
#include <string.h>
#include <stdint.h>

#include "dtnn_kernels.h"

#if DTNN_FUSED_X86

#define KT FUSED_KT
#define ROWS FUSED_ROWS
#define FW_TG 64  /* pixel tiles sweeping one chunk (as in im2col_fused.c) */
/* Default: live-tap blocks where at least this many percent of the products read
 * padding (3x3 pad 1: 40 % on 3x3 images, 18 % on 7x7, 9 % on 14x14).  Overridden
 * by DTNN_FUSED_LIVE_MIN (0..100; above 100 switches them off). */
#define LIVE_MIN_DEAD_PCT 15

/* tap r of output o reads a real pixel (not padding) */
static int tap_live(int64_t o, int64_t r, int64_t st, int64_t pad, int64_t d, int64_t H)
{
    const int64_t h = o * st - pad + r * d;
    return h >= 0 && h < H;
}

/* (output, tap) pairs along one axis that read real pixels */
static int64_t live_pairs(int64_t O, int64_t R, int64_t st, int64_t pad, int64_t d, int64_t H)
{
    int64_t o, r, n = 0;
    for (o = 0; o < O; ++o)
        for (r = 0; r < R; ++r)
            n += tap_live(o, r, st, pad, d, H);
    return n;
}

/* first tap along one axis that output o reads a real pixel with, R if none */
static int64_t first_live(int64_t o, int64_t R, int64_t st, int64_t pad, int64_t d, int64_t H)
{
    int64_t r;
    for (r = 0; r < R; ++r)
        if (tap_live(o, r, st, pad, d, H))
            return r;
    return R;
}

int dtnn_fused_live_mode(int64_t B, int64_t H, int64_t W, int64_t R, int64_t S,
                         int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh,
                         int64_t dwl, int64_t Ho, int64_t Wo)
{
    const char *env = getenv("DTNN_FUSED_LIVE_MIN");
    const int64_t pct = env != NULL && *env ? atoi(env) : LIVE_MIN_DEAD_PCT;
    int64_t total, live;
    if (B < ROWS || R * S > 64 || pct < 0 || pct > 100)
        return 0;
    total = Ho * R * Wo * S;
    live = live_pairs(Ho, R, sh, ph, dh, H) * live_pairs(Wo, S, sw, pw, dwl, W);
    return 100 * (total - live) >= pct * total;
}

/* images per live-tap block: blocks as even as possible, each a multiple of 6 and at
 * most B (the channel-major blocks' size, which the workspace is sized for) */
static int64_t live_block(int64_t N, int64_t B)
{
    const int64_t nblk = cdiv(N, B / ROWS * ROWS);
    return cdiv(cdiv(N, nblk), ROWS) * ROWS;
}

/* xpad[c][hp][wp][m] (m < nbp) = image n0 + m of x zero-padded, 0 for m >= nb.
 * No barrier at the end (nowait). */
static void pad_live(const dtnn_fused_ops *ops, const float *x, float *xpad, int64_t n0,
                     int64_t nb, int64_t nbp, int64_t C, int64_t H, int64_t W, int64_t ph,
                     int64_t pw)
{
    const int64_t Wp = W + 2 * pw, PP = (H + 2 * ph) * Wp;
    int64_t c;
#ifdef _OPENMP
#pragma omp for schedule(static) nowait
#endif
    for (c = 0; c < C; ++c) {
        float *dst = xpad + c * PP * nbp;
        int64_t h, w0, m0;
        memset(dst, 0, sizeof(float) * PP * nbp);
        for (h = 0; h < H; ++h)
            for (w0 = 0; w0 < W; w0 += 16)
                for (m0 = 0; m0 < nb; m0 += 16)
                    ops->tr_block(x + ((n0 + m0) * C + c) * H * W + h * W + w0, C * H * W,
                                  imin(16, nb - m0), imin(16, W - w0),
                                  dst + ((h + ph) * Wp + pw + w0) * nbp + m0, nbp, 0);
    }
}

/* pidx[q] (q = p * nbp + m) = offset of output pixel (p, m)'s top-left tap.  nowait. */
static void live_offsets(int32_t *pidx, int64_t nbp, int64_t P, int64_t Wo, int64_t Wp,
                         int64_t sh, int64_t sw)
{
    int64_t q;
#ifdef _OPENMP
#pragma omp for schedule(static) nowait
#endif
    for (q = 0; q < P * nbp; ++q) {
        const int64_t p = q / nbp, m = q % nbp;
        pidx[q] = (int32_t)(((p / Wo) * sh * Wp + (p % Wo) * sw) * nbp + m);
    }
}

void dtnn_fused_live_fwd(const dtnn_fused_ops *ops,
    const float *x, const float *w, const float *bias, float *y,
    int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
    int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dwl,
    int64_t Ho, int64_t Wo, int64_t G,
    int64_t w_gs, int64_t w_so, int64_t w_si, int64_t w_st, float *ws, int64_t B)
{
    const int64_t Cg = C / G, Kg = K / G, T = R * S, J = Cg * T, P = Ho * Wo;
    const int64_t Kgp = cdiv(Kg, 16) * 16, nkt = cdiv(Kgp, KT);
    const int64_t Wp = W + 2 * pw, PP = (H + 2 * ph) * Wp;
    const int64_t JC = ops->fw_chunk, Bh = live_block(N, B), nblocks = cdiv(N, Bh);
    const int64_t Qmax = Bh * P + ROWS;
    /* workspace as im2col_fused.c's forward (Bh <= B): W^T | Y^T | xpad | jo | pidx */
    float *wT = (float *)(((uintptr_t)ws + 63) & ~(uintptr_t)63);
    float *yT = wT + G * nkt * J * KT;
    float *xpad = yT + nkt * KT * Qmax;
    int64_t *jo = (int64_t *)(((uintptr_t)(xpad + C * Bh * PP) + 7) & ~(uintptr_t)7);
    int32_t *pidx = (int32_t *)(jo + J);

#ifdef _OPENMP
#pragma omp parallel if (N * K * P * J >= 4 * DTNN_OMP_MIN_WORK)
#endif
    {
        int64_t it, blk, g;
        const int64_t nth = fused_num_threads();
        /* pack W^T[g][kt][t*Cg + i][lane] = wt(g, kt*64 + lane, i, t), 0 past Kg */
        if ((w_st == 1 || w_st == -1) && T <= 16) {
            /* a (16 outputs x T taps) transpose per channel, rows Cg apart (taps
             * reversed when w_st < 0: the backward-data's filters) */
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (it = 0; it < G * nkt * Cg * 4; ++it) {
                const int64_t gk = it / (Cg * 4), i = (it / 4) % Cg, l0 = it % 4 * 16;
                const int64_t gg = gk / nkt, kt = gk % nkt, o0 = kt * KT + l0;
                float *dst = wT + (gk * J + i) * KT + l0;
                const float *src = w + gg * w_gs + i * w_si + o0 * w_so;
                if (o0 >= Kgp)
                    continue;
                if (w_st > 0)
                    ops->tr_block(src, w_so, imax(0, imin(16, Kg - o0)), T, dst, Cg * KT, 1);
                else
                    ops->tr_block(src - (T - 1), w_so, imax(0, imin(16, Kg - o0)), T,
                                  dst + (T - 1) * Cg * KT, -Cg * KT, 1);
            }
        } else {
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (it = 0; it < G * nkt * Cg; ++it) {
                const int64_t gk = it / Cg, i = it % Cg, gg = gk / nkt, kt = gk % nkt;
                const float *src = w + gg * w_gs + i * w_si;
                int64_t t, lane;
                for (t = 0; t < T; ++t) {
                    float *dst = wT + (gk * J + t * Cg + i) * KT;
                    for (lane = 0; lane < KT; ++lane) {
                        const int64_t o = kt * KT + lane;
                        dst[lane] = o < Kg ? src[o * w_so + t * w_st] : 0.0f;
                    }
                }
            }
        }
        for (blk = 0; blk < nblocks; ++blk) {
            const int64_t n0 = blk * Bh, nb = imin(Bh, N - n0), nbp = cdiv(nb, ROWS) * ROWS;
            const int64_t Qb = P * nbp, npt = Qb / ROWS, tpp = nbp / ROWS;
            const int64_t tg = imax(1, imin(FW_TG, cdiv(npt * nkt, 4 * nth)));
            const int64_t ntg = cdiv(npt, tg);
            pad_live(ops, x, xpad, n0, nb, nbp, C, H, W, ph, pw);
            live_offsets(pidx, nbp, P, Wo, Wp, sh, sw);
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (it = 0; it < J; ++it) {
                const int64_t t = it / Cg, i = it % Cg;
                jo[it] = i * PP * nbp + ((t / S) * dh * Wp + (t % S) * dwl) * nbp;
            }
            for (g = 0; g < G; ++g) {
                const float *xg = xpad + g * Cg * PP * nbp;
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
                for (it = 0; it < nkt * ntg; ++it) {
                    const int64_t kt = it / ntg;
                    const int64_t tA = (it % ntg) * tg, tB = imin(tA + tg, npt);
                    const int nvk = (int)(imin(KT, Kgp - kt * KT) / 16);
                    float *yk = yT + kt * Qmax * KT;
                    const float *wk = wT + (g * nkt + kt) * J * KT;
                    int64_t tt, j0;
                    /* positions whose every tap reads padding: Y^T = 0 */
                    for (tt = tA; tt < tB;) {
                        const int64_t p = tt / tpp, e = imin(tB, (p + 1) * tpp);
                        if (first_live(p / Wo, R, sh, ph, dh, H) == R
                            || first_live(p % Wo, S, sw, pw, dwl, W) == S)
                            memset(yk + tt * ROWS * KT, 0, sizeof(float) * (e - tt) * ROWS * KT);
                        tt = e;
                    }
                    /* chunks of JC rows (tap-major): a chunk of W^T stays in L1 while the
                     * task's tiles sweep the rows of it that their position reads real
                     * pixels with (consecutive live taps in one call) */
                    for (j0 = 0; j0 < J; j0 += JC) {
                        const int64_t j1 = imin(J, j0 + JC);
                        for (tt = tA; tt < tB;) {
                            const int64_t p = tt / tpp, e = imin(tB, (p + 1) * tpp);
                            const int64_t ho = p / Wo, wo = p % Wo;
                            /* first row this position reads: it stores, later ones add */
                            const int64_t f = (first_live(ho, R, sh, ph, dh, H) * S
                                               + first_live(wo, S, sw, pw, dwl, W)) * Cg;
                            int64_t a = 0, b = 0, t;
                            for (t = j0 / Cg; t * Cg < j1; ++t) {
                                const int64_t ra = imax(j0, t * Cg), rb = imin(j1, (t + 1) * Cg);
                                if (!tap_live(ho, t / S, sh, ph, dh, H)
                                    || !tap_live(wo, t % S, sw, pw, dwl, W))
                                    continue;
                                if (ra == b && b > a) {
                                    b = rb;
                                    continue;
                                }
                                if (b > a)
                                    ops->fw_tiles(nvk, xg, jo + a, b - a, pidx, Qb, tt, e,
                                                  wk + a * KT, yk, a > f);
                                a = ra;
                                b = rb;
                            }
                            if (b > a)
                                ops->fw_tiles(nvk, xg, jo + a, b - a, pidx, Qb, tt, e,
                                              wk + a * KT, yk, a > f);
                            tt = e;
                        }
                    }
                }
                /* Y^T -> y (NCHW) + bias, 16 positions x 16 channels of one image */
                {
                    const int64_t nkb = cdiv(Kg, 16), npb = cdiv(P, 16);
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
                    for (it = 0; it < nb * nkb * npb; ++it) {
                        const int64_t m = it / (nkb * npb), kb = (it / npb) % nkb;
                        const int64_t p0 = (it % npb) * 16, k0 = kb * 16;
                        const float *src = yT + ((k0 / KT) * Qmax + p0 * nbp + m) * KT + k0 % KT;
                        ops->store_y(src, nbp * KT, imin(16, P - p0), imin(16, Kg - k0),
                                     bias ? bias + g * Kg + k0 : NULL,
                                     y + ((n0 + m) * K + g * Kg + k0) * P + p0, P);
                    }
                }
            }
        }
    }
}

void dtnn_fused_live_bww(const dtnn_fused_ops *ops, const float *x, const float *dy,
    float *dw, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
    int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dwl,
    int64_t Ho, int64_t Wo, int64_t G, float *ws, int serial, int64_t B)
{
    const int64_t Cg = C / G, Kg = K / G, T = R * S, J = Cg * T, P = Ho * Wo;
    const int64_t Kgp = cdiv(Kg, 16) * 16, nkt = cdiv(Kgp, KT);
    const int64_t nct = cdiv(Cg, ROWS), njt = T * nct;   /* tiles: 6 channels of a tap */
    const int64_t Wp = W + 2 * pw, PP = (H + 2 * ph) * Wp;
    const int64_t Bh = live_block(N, B), nblocks = cdiv(N, Bh), Qmax = Bh * P;
    /* workspace as im2col_fused.c's backward-weights (Bh <= B): dwT | xpad | dyT | pidx */
    float *dwT = ws;
    float *xpad = dwT + G * J * Kgp;
    float *dyT = (float *)(((uintptr_t)(xpad + C * Bh * PP) + 63) & ~(uintptr_t)63);
    int32_t *pidx = (int32_t *)(dyT + G * nkt * KT * Qmax);

#ifdef _OPENMP
#pragma omp parallel if (!serial && N * K * P * J >= 4 * DTNN_OMP_MIN_WORK)
#endif
    {
        int64_t blk, it;
        for (blk = 0; blk < nblocks; ++blk) {
            const int64_t n0 = blk * Bh, nb = imin(Bh, N - n0), nbp = cdiv(nb, ROWS) * ROWS;
            pad_live(ops, x, xpad, n0, nb, nbp, C, H, W, ph, pw);
            live_offsets(pidx, nbp, P, Wo, Wp, sh, sw);
            /* dy -> dyT[g][kt][p*nbp + m][64], zero rows for the padding images */
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (it = 0; it < G * nkt * nbp; ++it) {
                const int64_t g = it / (nkt * nbp), kt = (it / nbp) % nkt, m = it % nbp;
                float *dst = dyT + ((g * nkt + kt) * Qmax + m) * KT;
                const int64_t k0 = kt * KT, kv = imin(KT, Kgp - k0);
                int64_t kk, p0;
                if (m >= nb) {
                    for (p0 = 0; p0 < P; ++p0)
                        memset(dst + p0 * nbp * KT, 0, sizeof(float) * KT);
                    continue;
                }
                for (kk = 0; kk < kv; kk += 16) {
                    const float *src = dy + ((n0 + m) * K + g * Kg + k0 + kk) * P;
                    const int64_t nk = imax(0, imin(16, Kg - k0 - kk));
                    for (p0 = 0; p0 < P; p0 += 16)
                        ops->tr_block(src + p0, P, nk, imin(16, P - p0),
                                      dst + p0 * nbp * KT + kk, nbp * KT, 1);
                }
            }
            /* dW^T tiles: 6 channels of one tap, summed over that tap's live pixel runs */
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (it = 0; it < G * nkt * njt; ++it) {
                const int64_t g = it / (nkt * njt), kt = (it / njt) % nkt, jt = it % njt;
                const int64_t t = jt / nct, c0 = (jt % nct) * ROWS, r = t / S, s = t % S;
                const int nrow = (int)imin(ROWS, Cg - c0);
                const int nvk = (int)(imin(KT, Kgp - kt * KT) / 16);
                const int64_t toff = (r * dh * Wp + s * dwl) * nbp;
                const float *d = dyT + (g * nkt + kt) * Qmax * KT;
                float *cc = dwT + (g * J + c0 * T + t) * Kgp + kt * KT;
                const float *xr[ROWS];
                int64_t wa = 0, wb = -1, ho, qs = 0, qe = 0;
                int done = 0, i;
                for (i = 0; i < ROWS; ++i)
                    xr[i] = xpad + (g * Cg + c0 + (i < nrow ? i : 0)) * PP * nbp + toff;
                /* the live columns of tap s: a contiguous range [wa, wb] */
                while (wa < Wo && !tap_live(wa, s, sw, pw, dwl, W))
                    ++wa;
                for (wb = wa; wb + 1 < Wo && tap_live(wb + 1, s, sw, pw, dwl, W); ++wb)
                    ;
                for (ho = 0; ho < Ho && wa < Wo; ++ho) {
                    const int64_t a = (ho * Wo + wa) * nbp, b = (ho * Wo + wb + 1) * nbp;
                    if (!tap_live(ho, r, sh, ph, dh, H))
                        continue;
                    if (a == qe && qe > qs) {
                        qe = b;
                        continue;
                    }
                    if (qe > qs) {
                        ops->bw_tile(nvk, xr, pidx + qs, qe - qs, d + qs * KT, cc, T * Kgp,
                                     nrow, blk > 0 || done);
                        done = 1;
                    }
                    qs = a;
                    qe = b;
                }
                if (qe > qs) {
                    ops->bw_tile(nvk, xr, pidx + qs, qe - qs, d + qs * KT, cc, T * Kgp, nrow,
                                 blk > 0 || done);
                    done = 1;
                }
                if (!done && blk == 0)   /* a tap that reads only padding: dW = 0 */
                    ops->bw_tile(nvk, xr, pidx, 0, d, cc, T * Kgp, nrow, 0);
            }
        }
        /* dw[g*Kg + k][j] = dwT[g][j][k] */
        {
            const int64_t njb = cdiv(J, 16), nkb = cdiv(Kg, 16);
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (it = 0; it < G * nkb * njb; ++it) {
                const int64_t g = it / (nkb * njb), kb = (it / njb) % nkb, jb = it % njb;
                const int64_t k0 = kb * 16, j0 = jb * 16;
                ops->tr_block(dwT + (g * J + j0) * Kgp + k0, Kgp, imin(16, J - j0),
                              imin(16, Kg - k0), dw + (g * Kg + k0) * J + j0, J, 0);
            }
        }
    }
}

#else /* no fused kernels on this target: never chosen */

int dtnn_fused_live_mode(int64_t B, int64_t H, int64_t W, int64_t R, int64_t S,
                         int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh,
                         int64_t dwl, int64_t Ho, int64_t Wo)
{
    (void)B; (void)H; (void)W; (void)R; (void)S; (void)sh; (void)sw; (void)ph; (void)pw;
    (void)dh; (void)dwl; (void)Ho; (void)Wo;
    return 0;
}

void dtnn_fused_live_fwd(const dtnn_fused_ops *ops,
    const float *x, const float *w, const float *bias, float *y,
    int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
    int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dwl,
    int64_t Ho, int64_t Wo, int64_t G,
    int64_t w_gs, int64_t w_so, int64_t w_si, int64_t w_st, float *ws, int64_t B)
{
    (void)ops; (void)x; (void)w; (void)bias; (void)y; (void)N; (void)C; (void)H; (void)W;
    (void)K; (void)R; (void)S; (void)sh; (void)sw; (void)ph; (void)pw; (void)dh; (void)dwl;
    (void)Ho; (void)Wo; (void)G; (void)w_gs; (void)w_so; (void)w_si; (void)w_st; (void)ws;
    (void)B;
}

void dtnn_fused_live_bww(const dtnn_fused_ops *ops, const float *x, const float *dy,
    float *dw, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
    int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dwl,
    int64_t Ho, int64_t Wo, int64_t G, float *ws, int serial, int64_t B)
{
    (void)ops; (void)x; (void)dy; (void)dw; (void)N; (void)C; (void)H; (void)W; (void)K;
    (void)R; (void)S; (void)sh; (void)sw; (void)ph; (void)pw; (void)dh; (void)dwl;
    (void)Ho; (void)Wo; (void)G; (void)ws; (void)serial; (void)B;
}

#endif /* DTNN_FUSED_X86 */
