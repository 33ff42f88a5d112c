/* ==================================================================================
 * Fused ("implicit im2col") convolution kernels: see im2col_fused.h.
 *
 * Both run a convolution GEMM straight from a zero-padded copy of a block of images,
 * laid out channel-major [C][images][Hp][Wp], instead of from a column matrix: with a
 * table giving each output pixel's offset in that block (any stride) and each
 * (channel, tap) row's offset (any dilation), the column entry (row j, pixel q) is
 * block[jo[j] + pidx[q]], one scalar load.  The micro-tiles broadcast those scalars
 * against vectors of 16 output channels, so every vector load is aligned and no
 * column matrix is ever written.
 *
 * This file is the driver, compiled for the baseline ISA: blocking, padding, offset
 * tables and the OpenMP work split.  The micro-tiles and the transposes are
 * ISA-specific (im2col_fused_ops.h): im2col_fused_avx512.c and im2col_fused_avx2.c,
 * chosen per call by dtnn_isa_pick() (the active level or an explicit request).
 *
 * Forward (dtnn_conv_fwd_f32): Y^T (pixels, Kg) = cols^T (pixels, Cg*T) x W^T.
 * A micro-tile is 6 output pixels x 4 vectors of 16 output channels (AVX-512: 24 zmm
 * accumulators; AVX2: four 6 x 16 tiles one after the other); per (channel, tap) row it
 * broadcasts 6 padded inputs and loads the packed, transposed filters
 * W^T [g][k-tile of 64][row][64].  The reduction runs in chunks of ops->fw_chunk rows
 * (a chunk of W^T kept in L1 while FW_TG pixel tiles sweep it; partial sums go
 * through the Y^T block), blocks hold up to FW_PIXELS
 * output pixels with at most FW_XBYTES of padded input, and Y^T is transposed into
 * NCHW (plus bias) 16x16 at a time.  Backward-data of a stride-1 convolution is this
 * kernel run on dy with the filters' channels swapped and taps reversed (strided
 * weight access), padding dil*(k-1) - pad.
 *
 * Backward-weights (dtnn_conv_bww_f32): dW^T (Cg*T, Kg) = cols (Cg*T, pixels) x dY^T,
 * reduced over blocks of ~BW_PIXELS output pixels (so a thread's dY^T slab stays in
 * L2); per block dy is transposed to [k-tile][pixel][64].  A micro-tile is 6 (channel,
 * tap) rows x 4 vectors of 16 output channels (AVX2: 4 tiles of 16), broadcasting one padded input per row
 * and pixel and accumulating over the whole block in registers; dW^T is transposed
 * into dw at the end.
 *
 * Threads (OpenMP) share the work inside each block: packing, padding and transposes
 * are split evenly, micro-tiles by (k-tile, pixel tiles) or (k-tile, rows), so every
 * output element is computed by one thread in a fixed order (results do not depend on
 * the thread count).
 * ================================================================================== */
#include "im2col_fused.h"

#include <stdlib.h>
#include <string.h>
#include <stdint.h>

#include "dtnn_isa.h"
#include "dtnn_kernels.h"
#include "im2col_fused_ops.h"

#define BW_ROWS FUSED_ROWS /* (channel, tap) rows per backward-weights micro-tile */
#define BW_KT FUSED_KT   /* output channels per k-tile (4 vectors of 16) */
#define BW_PIXELS 2048   /* target output pixels per backward-weights block */
#define FW_ROWS FUSED_ROWS /* output pixels per forward (K-vector) micro-tile */
#define FW_PIXELS 4096   /* target output pixels per forward (K-vector) block */
#define FW_XBYTES (1 << 20) /* and at most this much padded input per block */
#define FW_YBYTES (2 << 20) /* and at most this much Y^T per block */
#define FW_TG 64         /* pixel tiles sweeping one chunk */

/* the table of the level that runs a request (isa < 0: the active level), or NULL */
static const dtnn_fused_ops *fused_ops(int isa)
{
#if DTNN_FUSED_X86
    const int level = dtnn_isa_pick(isa);
    if (level == DTNN_ISA_AVX512)
        return &dtnn_fused_ops_avx512;
    if (level == DTNN_ISA_AVX2)
        return &dtnn_fused_ops_avx2;
#else
    (void)isa;
#endif
    return NULL;
}

int dtnn_fused_isa(int isa)
{
    const int level = dtnn_isa_pick(isa);
    return fused_ops(isa) != NULL ? level : -1;
}

int dtnn_fused_compiled(int isa)
{
#if DTNN_FUSED_X86
    return isa == DTNN_ISA_AVX512 || isa == DTNN_ISA_AVX2;
#else
    (void)isa;
    return 0;
#endif
}

/* images per block and output rows per block: about ``target`` output pixels */
static void conv_blocks(int64_t N, int64_t Ho, int64_t Wo, int64_t target,
                        int64_t *B, int64_t *rows)
{
    const int64_t P = Ho * Wo;
    if (N <= 1 || 2 * P > target) {
        *B = 1;
        *rows = imin(Ho, imax(1, target / imax(Wo, 1)));
    } else {
        *B = imin(N, target / P);
        *rows = Ho;
    }
}

static void bww_blocks(int64_t N, int64_t Ho, int64_t Wo, int64_t *B, int64_t *rows)
{
    conv_blocks(N, Ho, Wo, BW_PIXELS, B, rows);
}


/* forward blocks: at most FW_PIXELS output pixels and a padded input block of at most
 * FW_XBYTES, so the block stays in L2 while the W^T chunks stream past it */
static void fwd_blocks(int64_t N, int64_t C, int64_t Kgp, int64_t PP, int64_t Ho,
                       int64_t Wo, int64_t *B, int64_t *rows)
{
    const int64_t per_image = imax(1, C * PP * 4);
    conv_blocks(N, Ho, Wo, imax(256, imin(FW_PIXELS, FW_YBYTES / (4 * Kgp))), B, rows);
    if (*B > 1)
        *B = imax(1, imin(*B, FW_XBYTES / per_image));
}

static int64_t fwd_ws_tiled(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                            int64_t R, int64_t S, int64_t ph, int64_t pw,
                            int64_t Ho, int64_t Wo, int64_t G)
{
    int64_t B, rows;
    const int64_t Cg = C / G, Kg = K / G, J = Cg * R * S;
    const int64_t nkt = cdiv(cdiv(Kg, 16) * 16, BW_KT);
    const int64_t PP = (H + 2 * ph) * (W + 2 * pw);
    fwd_blocks(N, C, cdiv(Kg, 16) * 16, PP, Ho, Wo, &B, &rows);
    {
        const int64_t Q = B * rows * Wo + FW_ROWS;
        return G * nkt * J * BW_KT    /* packed W^T */
               + C * B * PP           /* padded images */
               + nkt * BW_KT * Q      /* Y^T of one group */
               + Q + 2 * J + 32;      /* pixel offsets (int32), row offsets (int64), slack */
    }
}

/* dst (Hp x Wp) = src (H x W) zero-padded by ph rows and pw columns on each side */
static void pad_plane(const float *src, float *dst, int64_t H, int64_t W, int64_t ph,
                      int64_t pw)
{
    const int64_t Wp = W + 2 * pw;
    int64_t h;
    if (ph)
        memset(dst, 0, sizeof(float) * ph * Wp);
    for (h = 0; h < H; ++h) {
        float *d = dst + (h + ph) * Wp;
        if (pw) {
            memset(d, 0, sizeof(float) * pw);
            memset(d + pw + W, 0, sizeof(float) * pw);
        }
        memcpy(d + pw, src + h * W, sizeof(float) * W);
    }
    if (ph)
        memset(dst + (ph + H) * Wp, 0, sizeof(float) * ph * Wp);
}

/* ---- direct kernels for short reductions ------------------------------------------
 * First layers have 1-3 input channels: J = Cg*R*S of 9-27 reduction rows.  The tiled
 * kernels above then spend most of their time around the GEMM -- transposing dy into
 * dY^T and Y^T back into NCHW, a barrier after each of a block's worksharing loops --
 * for little arithmetic (measured on the 2-core Xeon at AVX2, batch 64: 1->32 3x3 at
 * 28x28 forward 1.86 ms at 1 thread, 2.43 ms at 2; 3->64 at 32x32 backward-weights
 * 6.4 / 4.0 ms).  With stride_w 1 the input pixels of consecutive outputs of a row are
 * consecutive in the padded image, so the direct kernels (ops->dfw_image/dbw_image) put
 * output pixels in the vector lanes and read NCHW dy and write NCHW y as they are: no
 * transposes.  Work is split by image (forward) or by output channels (backward-weights,
 * each thread sweeping every image for its channels), so no thread waits on another
 * inside a layer and every output is the same float at any thread count. */
#define DIRECT_J 32      /* reduction rows up to which the direct kernels run */
#define DIRECT_SLACK 32  /* floats after a padded image (vector over-read, zeroed) */

/* stride_w 1, a short reduction, and rows that fill at least 3/4 of their vectors */
int dtnn_fused_direct(int64_t C, int64_t R, int64_t S, int64_t G, int64_t sw, int64_t Wo)
{
    const int64_t J = (C / G) * R * S, vl = FUSED_DIRECT_VL;
    return G > 0 && sw == 1 && J <= DIRECT_J && Wo > 0 && 4 * Wo >= 3 * cdiv(Wo, vl) * vl;
}

static int direct_ok(const dtnn_fused_ops *ops, int64_t C, int64_t R, int64_t S, int64_t G,
                     int64_t sw, int64_t Wo)
{
    return ops->dfw_image != NULL && dtnn_fused_direct(C, R, S, G, sw, Wo);
}

/* floats of one thread's padded image */
static int64_t direct_image_floats(int64_t C, int64_t H, int64_t W, int64_t ph, int64_t pw)
{
    return cdiv(C * (H + 2 * ph) * (W + 2 * pw) + DIRECT_SLACK, 16) * 16;
}

/* workspace: packed filters [K][J] | row offsets jo[J] (int64) | one padded image per
 * thread, each part 64-byte aligned */
static int64_t direct_ws_floats(int64_t C, int64_t H, int64_t W, int64_t K, int64_t R,
                                int64_t S, int64_t ph, int64_t pw, int64_t G)
{
    const int64_t J = (C / G) * R * S;
    return 16 + cdiv(K * J, 16) * 16 + cdiv(J, 8) * 16
           + fused_max_threads() * direct_image_floats(C, H, W, ph, pw);
}

int64_t dtnn_conv_fwd_ws_floats(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                                int64_t R, int64_t S, int64_t ph, int64_t pw,
                                int64_t Ho, int64_t Wo, int64_t G)
{
    const int64_t tiled = fwd_ws_tiled(N, C, H, W, K, R, S, ph, pw, Ho, Wo, G);
    if ((C / G) * R * S <= DIRECT_J)
        return imax(tiled, direct_ws_floats(C, H, W, K, R, S, ph, pw, G));
    return tiled;
}

/* ws -> filters, jo and the padded images (jo[j] = offset of row j = (channel, tap)) */
static void direct_layout(float *ws, int64_t K, int64_t Cg, int64_t R, int64_t S,
                          int64_t Wp, int64_t PP, int64_t dh, int64_t dwl,
                          float **wp, int64_t **jo, float **xbase)
{
    const int64_t T = R * S, J = Cg * T;
    int64_t j;
    *wp = (float *)(((uintptr_t)ws + 63) & ~(uintptr_t)63);
    *jo = (int64_t *)(*wp + cdiv(K * J, 16) * 16);
    *xbase = (float *)(*jo + cdiv(J, 8) * 8);
    for (j = 0; j < J; ++j)
        (*jo)[j] = (j / T) * PP + (j % T) / S * dh * Wp + (j % S) * dwl;
}

/* image n of x, zero-padded, into xpad (C planes of PP) and the zeroed slack after it */
static void direct_pad(const float *x, int64_t n, int64_t C, int64_t H, int64_t W,
                       int64_t ph, int64_t pw, float *xpad)
{
    const int64_t PP = (H + 2 * ph) * (W + 2 * pw);
    int64_t c;
    for (c = 0; c < C; ++c)
        pad_plane(x + (n * C + c) * H * W, xpad + c * PP, H, W, ph, pw);
    memset(xpad + C * PP, 0, sizeof(float) * DIRECT_SLACK);
}

static void fwd_direct(const dtnn_fused_ops *ops,
    const float *x, const float *w, const float *bias, float *y,
    int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
    int64_t sh, int64_t ph, int64_t pw, int64_t dh, int64_t dwl, int64_t Ho, int64_t Wo,
    int64_t G, int64_t w_gs, int64_t w_so, int64_t w_si, int64_t w_st, float *ws)
{
    const int64_t Cg = C / G, Kg = K / G, T = R * S, J = Cg * T, P = Ho * Wo;
    const int64_t Wp = W + 2 * pw, PP = (H + 2 * ph) * Wp;
    const int64_t nth = fused_max_threads(), per = direct_image_floats(C, H, W, ph, pw);
    /* images x groups x channel chunks: chunks only when there are too few images */
    const int64_t nkc = N >= 2 * nth ? 1 : imax(1, imin(cdiv(2 * nth, N), cdiv(Kg, 8)));
    const int64_t tasks = N * G * nkc;
    float *wp, *xbase;
    int64_t *jo, it;
    direct_layout(ws, K, Cg, R, S, Wp, PP, dh, dwl, &wp, &jo, &xbase);
    for (it = 0; it < K * J; ++it) {
        const int64_t o = it / J, j = it % J, g = o / Kg;
        wp[it] = w[g * w_gs + (o % Kg) * w_so + (j / T) * w_si + (j % T) * w_st];
    }
#ifdef _OPENMP
#pragma omp parallel num_threads((int)nth) if (nth > 1 && N * K * P * J >= 4 * DTNN_OMP_MIN_WORK)
#endif
    {
        float *xpad = xbase + fused_thread_num() * per;
        int64_t t, last = -1;
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (t = 0; t < tasks; ++t) {
            const int64_t n = t / (G * nkc), g = t / nkc % G, kc = t % nkc;
            const int64_t k0 = g * Kg + Kg * kc / nkc, k1 = g * Kg + Kg * (kc + 1) / nkc;
            if (n != last) {
                direct_pad(x, n, C, H, W, ph, pw, xpad);
                last = n;
            }
            ops->dfw_image(xpad + g * Cg * PP, sh * Wp, jo, J, wp + k0 * J,
                           bias ? bias + k0 : NULL, k1 - k0, y + (n * K + k0) * P, Ho, Wo);
        }
    }
}

static void bww_direct(const dtnn_fused_ops *ops, const float *x, const float *dy, float *dw,
    int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
    int64_t sh, int64_t ph, int64_t pw, int64_t dh, int64_t dwl, int64_t Ho, int64_t Wo,
    int64_t G, float *ws)
{
    const int64_t Cg = C / G, Kg = K / G, J = Cg * R * S, P = Ho * Wo;
    const int64_t Wp = W + 2 * pw, PP = (H + 2 * ph) * Wp;
    const int64_t nth = fused_max_threads(), per = direct_image_floats(C, H, W, ph, pw);
    /* groups x channel chunks, one contiguous range of them per thread */
    const int64_t nkc = imax(1, imin(cdiv(Kg, 4), cdiv(nth, G))), tasks = G * nkc;
    float *wp, *xbase;
    int64_t *jo;
    direct_layout(ws, K, Cg, R, S, Wp, PP, dh, dwl, &wp, &jo, &xbase);
    memset(dw, 0, sizeof(float) * K * J);
#ifdef _OPENMP
#pragma omp parallel num_threads((int)nth) if (nth > 1 && N * K * P * J >= 4 * DTNN_OMP_MIN_WORK)
#endif
    {
        float *xpad = xbase + fused_thread_num() * per;
        const fused_range tr = fused_share(tasks);
        int64_t n, t;
        for (n = 0; n < N && tr.lo < tr.hi; ++n) {
            direct_pad(x, n, C, H, W, ph, pw, xpad);
            for (t = tr.lo; t < tr.hi; ++t) {
                const int64_t g = t / nkc, kc = t % nkc;
                const int64_t k0 = g * Kg + Kg * kc / nkc, k1 = g * Kg + Kg * (kc + 1) / nkc;
                ops->dbw_image(xpad + g * Cg * PP, sh * Wp, jo, J, dy + (n * K + k0) * P,
                               k1 - k0, Ho, Wo, dw + k0 * J);
            }
        }
    }
}

static int64_t bww_ws_one(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                          int64_t R, int64_t S, int64_t ph, int64_t pw,
                          int64_t Ho, int64_t Wo, int64_t G)
{
    int64_t B, rows;
    const int64_t Cg = C / G, Kg = K / G, J = Cg * R * S;
    const int64_t Kgp = cdiv(Kg, 16) * 16, nkt = cdiv(Kgp, BW_KT);
    bww_blocks(N, Ho, Wo, &B, &rows);
    {
        const int64_t Q = B * rows * Wo;
        const int64_t PP = (H + 2 * ph) * (W + 2 * pw);
        return G * J * Kgp            /* dW^T accumulator */
               + C * B * PP           /* padded images */
               + G * nkt * BW_KT * Q  /* transposed dy */
               + Q + 16;              /* pixel offsets (int32) + alignment slack */
    }
}

/* Backward-weights parallelises over (group, k-tile, row-tile) tasks.  A layer with few
 * of them -- first layers: 1-3 input channels, J = Cg*R*S of 9-27 rows, one k-tile --
 * leaves threads idle while paying a barrier per block (measured on the 2-core Xeon at
 * AVX2: 3->64 at 32x32, 6.1 ms at 1 thread, 8.5 ms at 2).  Such layers split the batch
 * instead: one contiguous part per thread, each run serially with its own workspace and
 * dW, then summed.  Returns the number of parts (1: the tiled path). */
static int64_t bww_parts(int64_t N, int64_t C, int64_t K, int64_t R, int64_t S,
                         int64_t Ho, int64_t Wo, int64_t G)
{
    const int64_t Cg = C / G, Kg = K / G, J = Cg * R * S;
    const int64_t tasks = G * cdiv(cdiv(Kg, 16) * 16, BW_KT) * cdiv(J, BW_ROWS);
    const int64_t nth = fused_max_threads();
    if (nth < 2 || tasks >= 4 * nth || N < 2 * nth
        || N * K * Ho * Wo * J < 4 * DTNN_OMP_MIN_WORK)
        return 1;
    return nth;
}

/* floats of one part's workspace + its dW, a multiple of 16 (64-byte aligned parts) */
static int64_t bww_part_floats(int64_t N, int64_t parts, int64_t C, int64_t H, int64_t W,
                               int64_t K, int64_t R, int64_t S, int64_t ph, int64_t pw,
                               int64_t Ho, int64_t Wo, int64_t G)
{
    const int64_t one = bww_ws_one(cdiv(N, parts), C, H, W, K, R, S, ph, pw, Ho, Wo, G);
    return cdiv(one, 16) * 16 + cdiv(K * (C / G) * R * S, 16) * 16;
}

int64_t dtnn_conv_bww_ws_floats(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                                int64_t R, int64_t S, int64_t ph, int64_t pw,
                                int64_t Ho, int64_t Wo, int64_t G)
{
    const int64_t parts = bww_parts(N, C, K, R, S, Ho, Wo, G);
    const int64_t direct = (C / G) * R * S <= DIRECT_J
                           ? direct_ws_floats(C, H, W, K, R, S, ph, pw, G) : 0;
    if (parts > 1)
        return imax(direct,
                    parts * bww_part_floats(N, parts, C, H, W, K, R, S, ph, pw, Ho, Wo, G) + 16);
    return imax(direct, bww_ws_one(N, C, H, W, K, R, S, ph, pw, Ho, Wo, G));
}

/* ---- pointwise backward-weights (1x1, stride 1, no padding) -------------------------
 * dW (K, Cg) = sum_n dy_n (Kg, P) x_n^T per group: both operands are already rows of
 * pixels, so the kernel (ops->pw_bw: output channels x input channels, pixels in the lanes)
 * reads them in place -- no padded copy, no dy transpose, no dW^T -- and sums the bias
 * gradient from the dy rows it holds in L1.  Threads take contiguous ranges of output
 * channels and sweep every image (no reduction across threads: the same floats at any
 * thread count).  A block -- several small images, or a chunk of one large image --
 * keeps its x rows in L2 while the output-channel tiles sweep them. */
#define PW_XBYTES (512 << 10) /* x's rows of one block (images x pixel chunk) */
#define PW_UNIT 6             /* output channels per unit of the thread split */

/* Images of at least PW_MIN_P pixels.  Smaller ones run the tiled kernel, faster there
 * (AVX2, batch 64, 1 and 2 threads: 128->128 at 14x14 0.72 vs 0.82 of torch's time,
 * 256->256 at 7x7 0.72 vs 1.5: each tile's start and reduction, and 7x7's 49 of 64
 * lanes, weigh on short rows); from 16x16 up the pointwise kernel wins. */
#define PW_MIN_P 256

int dtnn_fused_pointwise(int64_t R, int64_t S, int64_t sh, int64_t sw, int64_t ph,
                         int64_t pw, int64_t P)
{
    return R == 1 && S == 1 && sh == 1 && sw == 1 && ph == 0 && pw == 0 && P >= PW_MIN_P;
}

static void bww_pointwise(const dtnn_fused_ops *ops, const float *x, const float *dy,
                          float *dw, float *db, int64_t N, int64_t C, int64_t K, int64_t P,
                          int64_t G)
{
    const int64_t Cg = C / G, Kg = K / G;
    const int64_t xfl = PW_XBYTES / (int64_t)sizeof(float);
    /* pixels per chunk (a multiple of 16 when an image is cut) and images per block */
    const int64_t pc = Cg * P <= xfl ? P : imax(16, xfl / Cg / 16 * 16);
    const int64_t nb = pc < P ? 1 : imax(1, imin(N, xfl / (Cg * P)));
    const int64_t upg = cdiv(Kg, PW_UNIT), units = G * upg;
    const int64_t nth = fused_max_threads();
    memset(dw, 0, sizeof(float) * K * Cg);
    if (db != NULL)
        memset(db, 0, sizeof(float) * K);
#ifdef _OPENMP
#pragma omp parallel num_threads((int)nth) if (nth > 1 && N * K * P * Cg >= 4 * DTNN_OMP_MIN_WORK)
#endif
    {
        const fused_range ur = fused_share(units);
        const int64_t u0 = ur.lo, u1 = ur.hi;
        int64_t n, p0, g;
        for (n = 0; n < N && u0 < u1; n += nb)
            for (p0 = 0; p0 < P; p0 += pc) {
                const int64_t np = imin(pc, P - p0), ni = imin(nb, N - n);
                for (g = u0 / upg; g * upg < u1; ++g) {
                    const int64_t a = imax(u0, g * upg) - g * upg;
                    const int64_t b = imin(u1, (g + 1) * upg) - g * upg;
                    const int64_t k0 = g * Kg + imin(Kg, a * PW_UNIT);
                    const int64_t k1 = g * Kg + imin(Kg, b * PW_UNIT);
                    if (k1 > k0)
                        ops->pw_bw(x + (n * C + g * Cg) * P + p0, P, C * P, Cg,
                                   dy + (n * K + k0) * P + p0, P, K * P, ni, k1 - k0, np,
                                   dw + k0 * Cg, Cg, db != NULL ? db + k0 : NULL);
                }
            }
    }
}

/* ---- block preparation (called inside a parallel region: orphaned omp for) -------- */

/* xpad[c][n][Hp][Wp] = images n0 .. n0+nb-1 of x, zero-padded.  No barrier at the
 * end (nowait): the caller's next worksharing loop must end with one before xpad is
 * read. */
static void pad_block(const float *x, float *xpad, int64_t n0, int64_t nb, int64_t C,
                      int64_t H, int64_t W, int64_t ph, int64_t pw)
{
    const int64_t Wp = W + 2 * pw, PP = (H + 2 * ph) * Wp;
    int64_t it;
#ifdef _OPENMP
#pragma omp for schedule(static) nowait
#endif
    for (it = 0; it < C * nb; ++it) {
        const int64_t c = it / nb, n = it % nb;
        pad_plane(x + ((n0 + n) * C + c) * H * W, xpad + it * PP, H, W, ph, pw);
    }
}

/* pidx[q] = offset in a padded plane block of the top-left tap of output pixel q
 * (q = (n*nho + ho - ho0)*Wo + wo).  nowait, like pad_block. */
static void pixel_offsets(int32_t *pidx, int64_t nb, int64_t ho0, int64_t nho, int64_t Wo,
                          int64_t PP, int64_t Wp, int64_t sh, int64_t sw)
{
    const int64_t L = nho * Wo;
    int64_t it;
#ifdef _OPENMP
#pragma omp for schedule(static) nowait
#endif
    for (it = 0; it < nb * L; ++it) {
        const int64_t n = it / L, p = it % L, ho = ho0 + p / Wo, wo = p % Wo;
        pidx[it] = (int32_t)(n * PP + ho * sh * Wp + wo * sw);
    }
}


static void bww_run(const dtnn_fused_ops *ops,
    const float *x, const float *dy, float *dw,
    int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
    int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dwl,
    int64_t Ho, int64_t Wo, int64_t G, float *ws, int serial)
{
    const int64_t Cg = C / G, Kg = K / G, T = R * S, J = Cg * T, P = Ho * Wo;
    const int64_t Kgp = cdiv(Kg, 16) * 16, nkt = cdiv(Kgp, BW_KT), njt = cdiv(J, BW_ROWS);
    const int64_t Hp = H + 2 * ph, Wp = W + 2 * pw, PP = Hp * Wp;
    int64_t B, rows, toff[64], *toffp = toff;
    bww_blocks(N, Ho, Wo, &B, &rows);
    if (B > 1 && dtnn_fused_live_mode(B, H, W, R, S, sh, sw, ph, pw, dh, dwl, Ho, Wo)) {
        dtnn_fused_live_bww(ops, x, dy, dw, N, C, H, W, K, R, S, sh, sw, ph, pw, dh, dwl,
                            Ho, Wo, G, ws, serial, B);
        return;
    }
    const int64_t Q = B * rows * Wo;
    const int64_t nrb = cdiv(Ho, rows);                       /* row blocks per image */
    const int64_t nblocks = B > 1 ? cdiv(N, B) : N * nrb;
    /* workspace: dwT | xpad | dyT (64-byte aligned) | pidx */
    float *dwT = ws;
    float *xpad = dwT + G * J * Kgp;
    float *dyT = (float *)(((uintptr_t)(xpad + C * B * PP) + 63) & ~(uintptr_t)63);
    int32_t *pidx = (int32_t *)(dyT + G * nkt * BW_KT * Q);
    int64_t r, s;

    if (T > 64)
        toffp = (int64_t *)malloc(sizeof(int64_t) * T);
    for (r = 0; r < R; ++r)
        for (s = 0; s < S; ++s)
            toffp[r * S + s] = r * dh * Wp + s * dwl;
    /* the first block stores its tiles, later blocks add to them */

#ifdef _OPENMP
#pragma omp parallel if (!serial && N * K * P * J >= 4 * DTNN_OMP_MIN_WORK)
#endif
    {
        int64_t blk;
        for (blk = 0; blk < nblocks; ++blk) {
            const int64_t n0 = B > 1 ? blk * B : blk / nrb;
            const int64_t nb = B > 1 ? imin(B, N - n0) : 1;
            const int64_t ho0 = B > 1 ? 0 : (blk % nrb) * rows;
            const int64_t nho = B > 1 ? Ho : imin(rows, Ho - ho0);
            const int64_t L = nho * Wo, Qb = nb * L;
            int64_t it;

            /* padded images [c][n][Hp][Wp] (once per image when rows are split) */
            if (ho0 == 0)
                pad_block(x, xpad, n0, nb, C, H, W, ph, pw);
            pixel_offsets(pidx, nb, ho0, nho, Wo, PP, Wp, sh, sw);
            /* dy -> dyT[g][kt][q][64] */
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (it = 0; it < G * nkt * nb; ++it) {
                const int64_t g = it / (nkt * nb), kt = (it / nb) % nkt, n = it % nb;
                float *dst = dyT + ((g * nkt + kt) * Q + n * L) * BW_KT;
                const int64_t k0 = kt * BW_KT;
                const int64_t kv = imin(BW_KT, Kgp - k0);          /* multiple of 16 */
                const float *src = dy + ((n0 + n) * K + g * Kg + k0) * P + ho0 * Wo;
                int64_t kk, p0;
                for (kk = 0; kk < kv; kk += 16) {
                    const int64_t nk = imax(0, imin(16, Kg - k0 - kk));
                    for (p0 = 0; p0 < L; p0 += 16)
                        ops->tr_block(src + kk * P + p0, P, nk, imin(16, L - p0),
                                 dst + p0 * BW_KT + kk, BW_KT, 1);
                }
            }
            /* dW^T tiles: k-tile outer so a thread keeps its dyT slab in cache */
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (it = 0; it < G * nkt * njt; ++it) {
                const int64_t g = it / (nkt * njt), kt = (it / njt) % nkt, jt = it % njt;
                const int64_t j0 = jt * BW_ROWS;
                const int nrow = (int)imin(BW_ROWS, J - j0);
                const int nvk = (int)(imin(BW_KT, Kgp - kt * BW_KT) / 16);
                const float *xr[BW_ROWS];
                const float *d = dyT + (g * nkt + kt) * Q * BW_KT;
                float *c = dwT + (g * J + j0) * Kgp + kt * BW_KT;
                int i;
                for (i = 0; i < BW_ROWS; ++i) {
                    const int64_t j = j0 + (i < nrow ? i : 0);
                    xr[i] = xpad + (g * Cg + j / T) * nb * PP + toffp[j % T];
                }
                ops->bw_tile(nvk, xr, pidx, Qb, d, c, Kgp, nrow, blk > 0);
            }
        }
        /* dw[g*Kg + k][j] = dwT[g][j][k] */
        {
            const int64_t njb = cdiv(J, 16), nkb = cdiv(Kg, 16);
            int64_t it;
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (it = 0; it < G * nkb * njb; ++it) {
                const int64_t g = it / (nkb * njb), kb = (it / njb) % nkb, jb = it % njb;
                const int64_t k0 = kb * 16, j0 = jb * 16;
                const int64_t nk = imin(16, Kg - k0), nj = imin(16, J - j0);
                ops->tr_block(dwT + (g * J + j0) * Kgp + k0, Kgp, nj, nk,
                         dw + (g * Kg + k0) * J + j0, J, 0);
            }
        }
    }
    if (toffp != toff)
        free(toffp);
}


static void conv_fwd_run(const dtnn_fused_ops *ops,
    const float *x, const float *w, const float *bias, float *y,
    int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
    int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dwl,
    int64_t Ho, int64_t Wo, int64_t G,
    int64_t w_gs, int64_t w_so, int64_t w_si, int64_t w_st, float *ws)
{
    const int64_t Cg = C / G, Kg = K / G, T = R * S, J = Cg * T, P = Ho * Wo;
    const int64_t Kgp = cdiv(Kg, 16) * 16, nkt = cdiv(Kgp, BW_KT);
    const int64_t Hp = H + 2 * ph, Wp = W + 2 * pw, PP = Hp * Wp;
    const int64_t JC = ops->fw_chunk, TG = FW_TG;
    int64_t B, rows;
    fwd_blocks(N, C, cdiv(Kg, 16) * 16, PP, Ho, Wo, &B, &rows);
    if (B > 1 && dtnn_fused_live_mode(B, H, W, R, S, sh, sw, ph, pw, dh, dwl, Ho, Wo)) {
        dtnn_fused_live_fwd(ops, x, w, bias, y, N, C, H, W, K, R, S, sh, sw, ph, pw, dh,
                            dwl, Ho, Wo, G, w_gs, w_so, w_si, w_st, ws, B);
        return;
    }
    const int64_t Qmax = B * rows * Wo + FW_ROWS;
    const int64_t nrb = cdiv(Ho, rows);
    const int64_t nblocks = B > 1 ? cdiv(N, B) : N * nrb;
    /* workspace: W^T [g][kt][j][64] | Y^T [kt][q][64] | xpad | jo (int64) | pidx */
    float *wT = (float *)(((uintptr_t)ws + 63) & ~(uintptr_t)63);
    float *yT = wT + G * nkt * J * BW_KT;
    float *xpad = yT + nkt * BW_KT * Qmax;
    int64_t *jo = (int64_t *)(((uintptr_t)(xpad + C * B * PP) + 7) & ~(uintptr_t)7);
    int32_t *pidx = (int32_t *)(jo + J);

#ifdef _OPENMP
#pragma omp parallel if (N * K * P * J >= 4 * DTNN_OMP_MIN_WORK)
#endif
    {
        int64_t it, blk, g;
        const int64_t nth = fused_num_threads();
        /* pack W^T[g][kt][i*T + t][lane] = wt(g, kt*64 + lane, i, t), 0 past Kg */
        if (w_st == 1 && w_si == T) {
            /* rows of wt(g, o, ., .) are contiguous: 16x16 transposes */
            const int64_t njb = cdiv(J, 16);
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (it = 0; it < G * nkt * 4 * njb; ++it) {
                const int64_t gk = it / (4 * njb), l0 = (it / njb) % 4 * 16;
                const int64_t j0 = (it % njb) * 16, gg = gk / nkt, kt = gk % nkt;
                const int64_t o0 = kt * BW_KT + l0;
                if (o0 >= Kgp)
                    continue;
                ops->tr_block(w + gg * w_gs + o0 * w_so + j0, w_so, imax(0, imin(16, Kg - o0)),
                         imin(16, J - j0), wT + (gk * J + j0) * BW_KT + l0, BW_KT, 1);
            }
        } else if (w_so == T && (w_st == 1 || w_st == -1) && T <= 16) {
            /* taps of consecutive outputs o are contiguous (backward-data: o = input
             * channel): (16 o x T taps) transposes, written tap-reversed if w_st < 0 */
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (it = 0; it < G * nkt * Cg * 4; ++it) {
                const int64_t gk = it / (Cg * 4), i = (it / 4) % Cg, l0 = it % 4 * 16;
                const int64_t gg = gk / nkt, kt = gk % nkt, o0 = kt * BW_KT + l0;
                float *dst = wT + (gk * J + i * T) * BW_KT + l0;
                const float *src = w + gg * w_gs + i * w_si + o0 * w_so;
                if (o0 >= Kgp)
                    continue;
                if (w_st > 0)
                    ops->tr_block(src, T, imax(0, imin(16, Kg - o0)), T, dst, BW_KT, 1);
                else
                    ops->tr_block(src - (T - 1), T, imax(0, imin(16, Kg - o0)), T,
                             dst + (T - 1) * BW_KT, -BW_KT, 1);
            }
        } else {
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (it = 0; it < G * nkt * Cg; ++it) {
                const int64_t gk = it / Cg, i = it % Cg, gg = gk / nkt, kt = gk % nkt;
                float *dst = wT + (gk * J + i * T) * BW_KT;
                const float *src = w + gg * w_gs + i * w_si;
                int64_t t, lane;
                for (t = 0; t < T; ++t)
                    for (lane = 0; lane < BW_KT; ++lane) {
                        const int64_t o = kt * BW_KT + lane;
                        dst[t * BW_KT + lane] = o < Kg ? src[o * w_so + t * w_st] : 0.0f;
                    }
            }
        }
        for (blk = 0; blk < nblocks; ++blk) {
            const int64_t n0 = B > 1 ? blk * B : blk / nrb;
            const int64_t nb = B > 1 ? imin(B, N - n0) : 1;
            const int64_t ho0 = B > 1 ? 0 : (blk % nrb) * rows;
            const int64_t nho = B > 1 ? Ho : imin(rows, Ho - ho0);
            const int64_t L = nho * Wo, Qb = nb * L, npt = cdiv(Qb, FW_ROWS);
            /* pixel tiles per task: FW_TG, fewer when that leaves threads idle */
            const int64_t tg = imax(1, imin(TG, cdiv(npt * nkt, 4 * nth)));
            const int64_t ntg = cdiv(npt, tg);
            if (ho0 == 0)
                pad_block(x, xpad, n0, nb, C, H, W, ph, pw);
            pixel_offsets(pidx, nb, ho0, nho, Wo, PP, Wp, sh, sw);
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
            for (it = 0; it < J; ++it)
                jo[it] = (it / T) * nb * PP + (it % T) / S * dh * Wp + (it % S) * dwl;
            for (g = 0; g < G; ++g) {
                const float *xg = xpad + g * Cg * nb * PP;
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
                for (it = 0; it < nkt * ntg; ++it) {
                    const int64_t kt = it / ntg;
                    const int64_t t0 = (it % ntg) * tg, t1 = imin(t0 + tg, npt);
                    const int nvk = (int)(imin(BW_KT, Kgp - kt * BW_KT) / 16);
                    int64_t j0;
                    /* the reduction in chunks of JC (c, tap) rows: a chunk of W^T stays
                     * in L1 while the group's pixel tiles sweep it */
                    for (j0 = 0; j0 < J; j0 += JC)
                        ops->fw_tiles(nvk, xg, jo + j0, imin(JC, J - j0), pidx, Qb, t0, t1,
                                      wT + ((g * nkt + kt) * J + j0) * BW_KT,
                                      yT + kt * Qmax * BW_KT, j0 > 0);
                }
                /* Y^T -> y (NCHW) + bias, 16 pixels x 16 channels at a time */
                {
                    const int64_t nkb = cdiv(Kg, 16), npb = cdiv(L, 16);
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
                    for (it = 0; it < nb * nkb * npb; ++it) {
                        const int64_t n = it / (nkb * npb), kb = (it / npb) % nkb;
                        const int64_t p0 = (it % npb) * 16, k0 = kb * 16;
                        const int64_t np_ = imin(16, L - p0), nk = imin(16, Kg - k0);
                        const float *src = yT + ((k0 / BW_KT) * Qmax + n * L + p0) * BW_KT
                                           + k0 % BW_KT;
                        float *dst = y + ((n0 + n) * K + g * Kg + k0) * P + ho0 * Wo + p0;
                        ops->store_y(src, BW_KT, np_, nk, bias ? bias + g * Kg + k0 : NULL,
                                     dst, P);
                    }
                }
            }
        }
    }
}

int dtnn_fused_live(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R,
                    int64_t S, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh,
                    int64_t dwl, int64_t Ho, int64_t Wo, int64_t G, int pass)
{
    int64_t B, rows;
#if DTNN_FUSED_X86
    if (N <= 0 || Ho * Wo <= 0)
        return 0;
    if (pass == 0) {
        if (dtnn_fused_direct(C, R, S, G, sw, Wo))
            return 0;
        fwd_blocks(N, C, cdiv(K / G, 16) * 16, (H + 2 * ph) * (W + 2 * pw), Ho, Wo, &B, &rows);
    } else {
        if (dtnn_fused_pointwise(R, S, sh, sw, ph, pw, Ho * Wo)
            || dtnn_fused_direct(C, R, S, G, sw, Wo))
            return 0;
        N = cdiv(N, bww_parts(N, C, K, R, S, Ho, Wo, G));
        bww_blocks(N, Ho, Wo, &B, &rows);
    }
    return B > 1 && dtnn_fused_live_mode(B, H, W, R, S, sh, sw, ph, pw, dh, dwl, Ho, Wo);
#else
    (void)N; (void)C; (void)H; (void)W; (void)K; (void)R; (void)S; (void)sh; (void)sw;
    (void)ph; (void)pw; (void)dh; (void)dwl; (void)Ho; (void)Wo; (void)G; (void)pass;
    (void)B; (void)rows;
    return 0;
#endif
}

void dtnn_conv_bww_f32(const float *x, const float *dy, float *dw,
                       int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                       int64_t R, int64_t S, int64_t sh, int64_t sw,
                       int64_t ph, int64_t pw, int64_t dh, int64_t dwl,
                       int64_t Ho, int64_t Wo, int64_t G, int isa, float *ws, float *db)
{
    const dtnn_fused_ops *ops = fused_ops(isa);
    const int pointwise = dtnn_fused_pointwise(R, S, sh, sw, ph, pw, Ho * Wo);
    if (N <= 0 || Ho * Wo <= 0) {
        memset(dw, 0, sizeof(float) * K * (C / G) * R * S);
        if (db != NULL && pointwise)
            memset(db, 0, sizeof(float) * K);
        return;
    }
    if (ops == NULL)
        return;
    if (pointwise) {
        bww_pointwise(ops, x, dy, dw, db, N, C, K, Ho * Wo, G);
        return;
    }
    if (direct_ok(ops, C, R, S, G, sw, Wo)) {
        bww_direct(ops, x, dy, dw, N, C, H, W, K, R, S, sh, ph, pw, dh, dwl, Ho, Wo, G, ws);
        return;
    }
    {
        const int64_t parts = bww_parts(N, C, K, R, S, Ho, Wo, G);
        if (parts == 1) {
            bww_run(ops, x, dy, dw, N, C, H, W, K, R, S, sh, sw, ph, pw, dh, dwl, Ho, Wo, G,
                    ws, 0);
            return;
        }
#ifdef _OPENMP
        {
            const int64_t stride = bww_part_floats(N, parts, C, H, W, K, R, S, ph, pw, Ho,
                                                   Wo, G);
            const int64_t ndw = K * (C / G) * R * S;
            float *base = (float *)(((uintptr_t)ws + 63) & ~(uintptr_t)63);
            int64_t i;
            /* each thread one part; bww_run's own region is serial (if false: a team
             * of one), so its worksharing loops run whole on that thread */
#pragma omp parallel num_threads((int)parts)
            {
                const int64_t p = fused_thread_num();
                const fused_range nr = fused_part(N, p, parts);
                float *wsp = base + p * stride;
                float *dwp = wsp + (stride - cdiv(ndw, 16) * 16);
                bww_run(ops, x + nr.lo * C * H * W, dy + nr.lo * K * Ho * Wo, dwp,
                        nr.hi - nr.lo, C, H, W, K, R, S, sh, sw, ph, pw, dh, dwl, Ho, Wo, G,
                        wsp, 1);
            }
            /* dW = sum of the parts' dW, in part order (the same sums at a thread count) */
#pragma omp parallel for schedule(static)
            for (i = 0; i < ndw; ++i) {
                float acc = 0.0f;
                int64_t q;
                for (q = 0; q < parts; ++q)
                    acc += base[q * stride + (stride - cdiv(ndw, 16) * 16) + i];
                dw[i] = acc;
            }
        }
#endif
    }
}

void dtnn_conv_fwd_f32(const float *x, const float *w, const float *bias, float *y,
                       int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                       int64_t R, int64_t S, int64_t sh, int64_t sw,
                       int64_t ph, int64_t pw, int64_t dh, int64_t dwl,
                       int64_t Ho, int64_t Wo, int64_t G,
                       int64_t w_gs, int64_t w_so, int64_t w_si, int64_t w_st, int isa,
                       float *ws)
{
    const dtnn_fused_ops *ops = fused_ops(isa);
    if (N <= 0 || K <= 0 || Ho * Wo <= 0 || ops == NULL)
        return;
    if (direct_ok(ops, C, R, S, G, sw, Wo)) {
        fwd_direct(ops, x, w, bias, y, N, C, H, W, K, R, S, sh, ph, pw, dh, dwl, Ho, Wo, G,
                   w_gs, w_so, w_si, w_st, ws);
        return;
    }
    conv_fwd_run(ops, x, w, bias, y, N, C, H, W, K, R, S, sh, sw, ph, pw, dh, dwl, Ho, Wo, G,
                 w_gs, w_so, w_si, w_st, ws);
}
