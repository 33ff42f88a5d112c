/*
 * im2col / col2im for NCHW float32 tensors (see dtnn_kernels.h for the layout).
 *
 * im2col is parallel over (col row, image) pairs: each pair owns the contiguous
 * Ho*Wo slice col[row, n*Ho*Wo : (n+1)*Ho*Wo], so threads never share output.
 * col2im is parallel over (n, c) planes: every column entry of row (c, r, s) and
 * image n lands in plane (n, c) only, so again no two threads write the same
 * pixel, and each pixel accumulates its taps in (r, s) order like the twin does.
 */
#include <string.h>

#include "dtnn_kernels.h"

#ifdef _OPENMP
#include <omp.h>
#endif

int dtnn_openmp_enabled(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int dtnn_openmp_max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* Output positions o in [0, n_out) whose input index o*stride + off lies in
 * [0, n_in): they form the range [*lo, *hi). */
static inline void valid_range(int64_t n_out, int64_t n_in, int64_t stride,
                               int64_t off, int64_t *lo, int64_t *hi)
{
    int64_t a = (off >= 0) ? 0 : (-off + stride - 1) / stride;
    int64_t b = (n_in - 1 - off < 0) ? 0 : (n_in - 1 - off) / stride + 1;
    if (a > n_out) a = n_out;
    if (b > n_out) b = n_out;
    if (b < a) b = a;
    *lo = a;
    *hi = b;
}

void dtnn_im2col_f32(const float *DTNN_RESTRICT x, float *DTNN_RESTRICT col,
                     int64_t N, int64_t C, int64_t H, int64_t W,
                     int64_t R, int64_t S,
                     int64_t stride_h, int64_t stride_w,
                     int64_t pad_h, int64_t pad_w,
                     int64_t dil_h, int64_t dil_w,
                     int64_t Ho, int64_t Wo)
{
    const int64_t rows = C * R * S;
    const int64_t plane_out = Ho * Wo;
    const int64_t ncols = N * plane_out;
    const int64_t tasks = rows * N;
    /* stride 1 and output rows as long as input rows: a tap shifts the whole plane by
     * one flat offset, so the valid block is one contiguous copy (plus column fix-ups) */
    const int shift = stride_h == 1 && stride_w == 1 && Wo == W;

#ifdef _OPENMP
#pragma omp parallel if (rows * ncols >= DTNN_OMP_MIN_WORK)
#endif
    {
        /* a thread's tasks are consecutive: (row, image) pairs, row-major, so the
         * per-row quantities are recomputed only when the row changes */
        int64_t prev = -1, c = 0, h_off = 0, w_off = 0, lo = 0, hi = 0, hlo = 0, hhi = 0;
        int64_t t;
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (t = 0; t < tasks; ++t) {
            const int64_t row = t / N;
            const int64_t n = t - row * N;
            const float *DTNN_RESTRICT plane;
            float *DTNN_RESTRICT dst;
            int64_t ho, wo;
            if (row != prev) {
                const int64_t r = (row / S) % R, s = row % S;
                c = row / (R * S);
                h_off = r * dil_h - pad_h;
                w_off = s * dil_w - pad_w;
                valid_range(Wo, W, stride_w, w_off, &lo, &hi);
                valid_range(Ho, H, stride_h, h_off, &hlo, &hhi);
                prev = row;
            }
            plane = x + (n * C + c) * H * W;
            dst = col + row * ncols + n * plane_out;
            if (hhi <= hlo || hi <= lo) {
                memset(dst, 0, (size_t)plane_out * sizeof(float));
                continue;
            }
            if (shift) {
                const int64_t k0 = hlo * Wo + lo, k1 = (hhi - 1) * Wo + hi;
                memset(dst, 0, (size_t)k0 * sizeof(float));
                memcpy(dst + k0, plane + k0 + h_off * W + w_off, (size_t)(k1 - k0) * sizeof(float));
                memset(dst + k1, 0, (size_t)(plane_out - k1) * sizeof(float));
                if (lo > 0 || hi < Wo)
                    for (ho = hlo; ho < hhi; ++ho) {
                        float *DTNN_RESTRICT d = dst + ho * Wo;
                        for (wo = 0; wo < lo; ++wo)
                            d[wo] = 0.0f;
                        for (wo = hi; wo < Wo; ++wo)
                            d[wo] = 0.0f;
                    }
                continue;
            }
            if (hlo > 0)
                memset(dst, 0, (size_t)(hlo * Wo) * sizeof(float));
            if (hhi < Ho)
                memset(dst + hhi * Wo, 0, (size_t)((Ho - hhi) * Wo) * sizeof(float));
            for (ho = hlo; ho < hhi; ++ho) {
                const float *DTNN_RESTRICT src = plane + (ho * stride_h + h_off) * W;
                float *DTNN_RESTRICT d = dst + ho * Wo;
                for (wo = 0; wo < lo; ++wo)
                    d[wo] = 0.0f;
                if (stride_w == 1) {
                    if (hi - lo >= 32)
                        memcpy(d + lo, src + lo + w_off, (size_t)(hi - lo) * sizeof(float));
                    else
                        for (wo = lo; wo < hi; ++wo)
                            d[wo] = src[wo + w_off];
                } else {
                    for (wo = lo; wo < hi; ++wo)
                        d[wo] = src[wo * stride_w + w_off];
                }
                for (wo = hi; wo < Wo; ++wo)
                    d[wo] = 0.0f;
            }
        }
    }
}

void dtnn_col2im_f32(const float *DTNN_RESTRICT col, float *DTNN_RESTRICT x,
                     int64_t N, int64_t C, int64_t H, int64_t W,
                     int64_t R, int64_t S,
                     int64_t stride_h, int64_t stride_w,
                     int64_t pad_h, int64_t pad_w,
                     int64_t dil_h, int64_t dil_w,
                     int64_t Ho, int64_t Wo)
{
    const int64_t planes = N * C;
    const int64_t plane_in = H * W;
    const int64_t plane_out = Ho * Wo;
    const int64_t ncols = N * plane_out;
    int64_t p;

#ifdef _OPENMP
#pragma omp parallel for schedule(static) \
    if (C * R * S * ncols >= DTNN_OMP_MIN_WORK && planes > 1)
#endif
    for (p = 0; p < planes; ++p) {
        const int64_t n = p / C;
        const int64_t c = p - n * C;
        float *DTNN_RESTRICT plane = x + p * plane_in;
        int64_t r, s, ho, wo, lo, hi;

        memset(plane, 0, (size_t)plane_in * sizeof(float));

        for (r = 0; r < R; ++r) {
            const int64_t h_off = r * dil_h - pad_h;
            for (s = 0; s < S; ++s) {
                const int64_t w_off = s * dil_w - pad_w;
                const int64_t row = (c * R + r) * S + s;
                const float *DTNN_RESTRICT src = col + row * ncols + n * plane_out;

                valid_range(Wo, W, stride_w, w_off, &lo, &hi);
                if (hi <= lo)
                    continue;

                for (ho = 0; ho < Ho; ++ho) {
                    const int64_t ih = ho * stride_h + h_off;
                    float *DTNN_RESTRICT d;
                    const float *DTNN_RESTRICT sr;
                    if (ih < 0 || ih >= H)
                        continue;
                    d = plane + ih * W;
                    sr = src + ho * Wo;
                    if (stride_w == 1) {
                        for (wo = lo; wo < hi; ++wo)
                            d[wo + w_off] += sr[wo];
                    } else {
                        for (wo = lo; wo < hi; ++wo)
                            d[wo * stride_w + w_off] += sr[wo];
                    }
                }
            }
        }
    }
}

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
 * Forward (dtnn_conv_fwd_f32): Y^T (pixels, Kg) = cols^T (pixels, Cg*T) x W^T.
 * A micro-tile is 6 output pixels x 4 vectors of 16 output channels (24 zmm
 * accumulators); per (channel, tap) row it broadcasts 6 padded inputs and loads 4
 * vectors of the packed, transposed filters W^T [g][k-tile of 64][row][64].  The
 * reduction runs in chunks of FW_JC rows (32 KiB of W^T, kept in L1 while FW_TG pixel
 * tiles sweep it; partial sums go through the Y^T block), blocks hold up to FW_PIXELS
 * output pixels with at most FW_XBYTES of padded input, and Y^T is transposed into
 * NCHW (plus bias) 16x16 at a time.  Backward-data of a stride-1 convolution is this
 * kernel run on dy with the filters' channels swapped and taps reversed (strided
 * weight access), padding dil*(k-1) - pad.
 *
 * Backward-weights (dtnn_conv_bww_f32): dW^T (Cg*T, Kg) = cols (Cg*T, pixels) x dY^T,
 * reduced over blocks of ~BW_PIXELS output pixels (so a thread's dY^T slab stays in
 * L2); per block dy is transposed to [k-tile][pixel][64].  A micro-tile is 6 (channel,
 * tap) rows x 4 vectors of 16 output channels, broadcasting one padded input per row
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

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define DTNN_FUSED 1
#include <immintrin.h>
#define DTNN_AVX512 __attribute__((target("avx512f")))
#define DTNN_INLINE static inline __attribute__((always_inline))
#else
#define DTNN_FUSED 0
#endif

#define BW_ROWS 6        /* (channel, tap) rows per backward-weights micro-tile */
#define BW_KT 64         /* output channels per backward-weights k-tile (4 vectors) */
#define BW_PIXELS 2048   /* target output pixels per backward-weights block */
#define FW_ROWS 6        /* output pixels per forward (K-vector) micro-tile */
#define FW_PIXELS 4096   /* target output pixels per forward (K-vector) block */
#define FW_XBYTES (1 << 20) /* and at most this much padded input per block */
#define FW_YBYTES (2 << 20) /* and at most this much Y^T per block */
#define FW_JC 128        /* (c, tap) rows per reduction chunk: 32 KiB of W^T, in L1 */
#define FW_TG 64         /* pixel tiles sweeping one chunk */

static int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
static int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
static int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

int dtnn_fused_supported(void)
{
#if DTNN_FUSED
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") ? 1 : 0;
#else
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

int64_t dtnn_conv_fwd_ws_floats(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
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

int64_t dtnn_conv_bww_ws_floats(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
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

#if DTNN_FUSED

/* ---- 16x16 transpose in registers ------------------------------------------------- */
DTNN_INLINE DTNN_AVX512 void tr16(__m512 *r)
{
    __m512 t[16], u[16];
    int i, c;
    for (i = 0; i < 8; ++i) {
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (i = 0; i < 4; ++i) {
        const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 2]);
        const __m512d e = _mm512_castps_pd(t[4 * i + 1]), f = _mm512_castps_pd(t[4 * i + 3]);
        u[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
        u[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        u[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(e, f));
        u[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(e, f));
    }
    for (c = 0; c < 4; ++c) {
        const __m512 v0 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0x44);
        const __m512 v1 = _mm512_shuffle_f32x4(u[c], u[4 + c], 0xEE);
        const __m512 v2 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0x44);
        const __m512 v3 = _mm512_shuffle_f32x4(u[8 + c], u[12 + c], 0xEE);
        r[c] = _mm512_shuffle_f32x4(v0, v2, 0x88);
        r[c + 4] = _mm512_shuffle_f32x4(v0, v2, 0xDD);
        r[c + 8] = _mm512_shuffle_f32x4(v1, v3, 0x88);
        r[c + 12] = _mm512_shuffle_f32x4(v1, v3, 0xDD);
    }
}

static __mmask16 lanes(int64_t n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1u); }

/* dst[j*ldd + i] = src[i*lds + j] for i < ni, j < nj (ni, nj <= 16); rows of dst
 * beyond nj are not written, lanes beyond ni are written as 0 when zero_fill. */
DTNN_INLINE DTNN_AVX512 void tr_block(const float *src, int64_t lds, int64_t ni, int64_t nj,
                                      float *dst, int64_t ldd, int full_rows)
{
    __m512 r[16];
    const __mmask16 mj = lanes(nj), mi = lanes(ni);
    int i;
    for (i = 0; i < 16; ++i)
        r[i] = i < ni ? _mm512_maskz_loadu_ps(mj, src + i * lds) : _mm512_setzero_ps();
    tr16(r);
    for (i = 0; i < nj; ++i) {
        if (full_rows)
            _mm512_storeu_ps(dst + i * ldd, r[i]);
        else
            _mm512_mask_storeu_ps(dst + i * ldd, mi, r[i]);
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
        float *dst = xpad + it * PP;
        const float *src = x + ((n0 + n) * C + c) * H * W;
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

/* ---- backward-weights micro-tile: 6 (c, tap) rows x nv (1..4) vectors of 16 k ------ */
#define BW_R(X) X(0) X(1) X(2) X(3) X(4) X(5)

DTNN_INLINE DTNN_AVX512 void
bw_tile(const int nv, const float *const *xr, const int32_t *pidx, int64_t Q,
        const float *d, float *c, int64_t ldc, int rows, int acc)
{
#define BW_DECL(i) __m512 a##i##0 = _mm512_setzero_ps(), a##i##1 = a##i##0, \
        a##i##2 = a##i##0, a##i##3 = a##i##0; const float *x##i = xr[i];
    BW_R(BW_DECL)
    int64_t q;
    for (q = 0; q < Q; ++q) {
        const int64_t idx = pidx[q];
        const __m512 d0 = _mm512_load_ps(d);
        const __m512 d1 = nv > 1 ? _mm512_load_ps(d + 16) : d0;
        const __m512 d2 = nv > 2 ? _mm512_load_ps(d + 32) : d0;
        const __m512 d3 = nv > 3 ? _mm512_load_ps(d + 48) : d0;
        d += BW_KT;
#define BW_FMA(i) { const __m512 b = _mm512_set1_ps(x##i[idx]); \
        a##i##0 = _mm512_fmadd_ps(b, d0, a##i##0); \
        if (nv > 1) a##i##1 = _mm512_fmadd_ps(b, d1, a##i##1); \
        if (nv > 2) a##i##2 = _mm512_fmadd_ps(b, d2, a##i##2); \
        if (nv > 3) a##i##3 = _mm512_fmadd_ps(b, d3, a##i##3); }
        BW_R(BW_FMA)
    }
#define BW_ADD(i, u) _mm512_storeu_ps(cr + 16 * u, acc ? _mm512_add_ps(_mm512_loadu_ps(cr + 16 * u), a##i##u) : a##i##u)
#define BW_STORE(i) if (i < rows) { float *cr = c + i * ldc; BW_ADD(i, 0); \
        if (nv > 1) BW_ADD(i, 1); \
        if (nv > 2) BW_ADD(i, 2); \
        if (nv > 3) BW_ADD(i, 3); }
    BW_R(BW_STORE)
}

DTNN_AVX512 static void bww_avx512(
    const float *x, const float *dy, float *dw,
    int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
    int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dwl,
    int64_t Ho, int64_t Wo, int64_t G, float *ws)
{
    const int64_t Cg = C / G, Kg = K / G, T = R * S, J = Cg * T, P = Ho * Wo;
    const int64_t Kgp = cdiv(Kg, 16) * 16, nkt = cdiv(Kgp, BW_KT), njt = cdiv(J, BW_ROWS);
    const int64_t Hp = H + 2 * ph, Wp = W + 2 * pw, PP = Hp * Wp;
    int64_t B, rows, toff[64], *toffp = toff;
    bww_blocks(N, Ho, Wo, &B, &rows);
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
#pragma omp parallel if (N * K * P * J >= 4 * DTNN_OMP_MIN_WORK)
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
                        tr_block(src + kk * P + p0, P, nk, imin(16, L - p0),
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
                switch (nvk) {
                case 4: bw_tile(4, xr, pidx, Qb, d, c, Kgp, nrow, blk > 0); break;
                case 3: bw_tile(3, xr, pidx, Qb, d, c, Kgp, nrow, blk > 0); break;
                case 2: bw_tile(2, xr, pidx, Qb, d, c, Kgp, nrow, blk > 0); break;
                default: bw_tile(1, xr, pidx, Qb, d, c, Kgp, nrow, blk > 0); break;
                }
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
                tr_block(dwT + (g * J + j0) * Kgp + k0, Kgp, nj, nk,
                         dw + (g * Kg + k0) * J + j0, J, 0);
            }
        }
    }
    if (toffp != toff)
        free(toffp);
}

/* ---- forward (K-vector) micro-tile: 6 output pixels x nv (1..4) vectors of 16 k ----- */
#define FW_R(X) X(0) X(1) X(2) X(3) X(4) X(5)

DTNN_INLINE DTNN_AVX512 void
fw_tile(const int nv, const float *xb, const int64_t *jo, int64_t J, const int32_t *idx,
        const float *wt, float *yt, int acc)
{
#define FW_DECL(u) __m512 a##u##0 = _mm512_setzero_ps(), a##u##1 = a##u##0, \
        a##u##2 = a##u##0, a##u##3 = a##u##0; const int64_t i##u = idx[u];
    FW_R(FW_DECL)
    if (acc) {
#define FW_LOAD(u) a##u##0 = _mm512_load_ps(yt + u * BW_KT); \
        if (nv > 1) a##u##1 = _mm512_load_ps(yt + u * BW_KT + 16); \
        if (nv > 2) a##u##2 = _mm512_load_ps(yt + u * BW_KT + 32); \
        if (nv > 3) a##u##3 = _mm512_load_ps(yt + u * BW_KT + 48);
        FW_R(FW_LOAD)
    }
    int64_t j;
    for (j = 0; j < J; ++j) {
        const float *xp = xb + jo[j];
        const __m512 w0 = _mm512_load_ps(wt);
        const __m512 w1 = nv > 1 ? _mm512_load_ps(wt + 16) : w0;
        const __m512 w2 = nv > 2 ? _mm512_load_ps(wt + 32) : w0;
        const __m512 w3 = nv > 3 ? _mm512_load_ps(wt + 48) : w0;
        wt += BW_KT;
#define FW_FMA(u) { const __m512 b = _mm512_set1_ps(xp[i##u]); \
        a##u##0 = _mm512_fmadd_ps(b, w0, a##u##0); \
        if (nv > 1) a##u##1 = _mm512_fmadd_ps(b, w1, a##u##1); \
        if (nv > 2) a##u##2 = _mm512_fmadd_ps(b, w2, a##u##2); \
        if (nv > 3) a##u##3 = _mm512_fmadd_ps(b, w3, a##u##3); }
        FW_R(FW_FMA)
    }
#define FW_STORE(u) _mm512_store_ps(yt + u * BW_KT, a##u##0); \
    if (nv > 1) _mm512_store_ps(yt + u * BW_KT + 16, a##u##1); \
    if (nv > 2) _mm512_store_ps(yt + u * BW_KT + 32, a##u##2); \
    if (nv > 3) _mm512_store_ps(yt + u * BW_KT + 48, a##u##3);
    FW_R(FW_STORE)
}

DTNN_AVX512 static void conv_fwd_avx512(
    const float *x, const float *w, const float *bias, float *y,
    int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
    int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dwl,
    int64_t Ho, int64_t Wo, int64_t G,
    int64_t w_gs, int64_t w_so, int64_t w_si, int64_t w_st, float *ws)
{
    const int64_t Cg = C / G, Kg = K / G, T = R * S, J = Cg * T, P = Ho * Wo;
    const int64_t Kgp = cdiv(Kg, 16) * 16, nkt = cdiv(Kgp, BW_KT);
    const int64_t Hp = H + 2 * ph, Wp = W + 2 * pw, PP = Hp * Wp;
    const int64_t JC = FW_JC, TG = FW_TG;
    int64_t B, rows;
    fwd_blocks(N, C, cdiv(Kg, 16) * 16, PP, Ho, Wo, &B, &rows);
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
#ifdef _OPENMP
        const int64_t nth = omp_get_num_threads();
#else
        const int64_t nth = 1;
#endif
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
                tr_block(w + gg * w_gs + o0 * w_so + j0, w_so, imax(0, imin(16, Kg - o0)),
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
                    tr_block(src, T, imax(0, imin(16, Kg - o0)), T, dst, BW_KT, 1);
                else
                    tr_block(src - (T - 1), T, imax(0, imin(16, Kg - o0)), T,
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
                    int64_t j0, tt;
                    /* the reduction in chunks of JC (c, tap) rows: a chunk of W^T stays
                     * in L1 while the group's pixel tiles sweep it */
                    for (j0 = 0; j0 < J; j0 += JC) {
                        const int64_t nj = imin(JC, J - j0);
                        const float *wt = wT + ((g * nkt + kt) * J + j0) * BW_KT;
                        const int acc = j0 > 0;
                        for (tt = t0; tt < t1; ++tt) {
                            const int64_t q0 = tt * FW_ROWS;
                            float *yt = yT + (kt * Qmax + q0) * BW_KT;
                            int32_t idx[FW_ROWS];
                            int u;
                            for (u = 0; u < FW_ROWS; ++u)
                                idx[u] = pidx[q0 + u < Qb ? q0 + u : q0];
                            switch (nvk) {
                            case 4: fw_tile(4, xg, jo + j0, nj, idx, wt, yt, acc); break;
                            case 3: fw_tile(3, xg, jo + j0, nj, idx, wt, yt, acc); break;
                            case 2: fw_tile(2, xg, jo + j0, nj, idx, wt, yt, acc); break;
                            default: fw_tile(1, xg, jo + j0, nj, idx, wt, yt, acc); break;
                            }
                        }
                    }
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
                        const __mmask16 mp = lanes(np_);
                        __m512 r[16];
                        int i;
                        for (i = 0; i < 16; ++i)
                            r[i] = i < np_ ? _mm512_load_ps(src + i * BW_KT) : _mm512_setzero_ps();
                        tr16(r);
                        for (i = 0; i < nk; ++i) {
                            const __m512 b = _mm512_set1_ps(bias ? bias[g * Kg + k0 + i] : 0.0f);
                            _mm512_mask_storeu_ps(dst + i * P, mp, _mm512_add_ps(r[i], b));
                        }
                    }
                }
            }
        }
    }
}

#endif /* DTNN_FUSED */

void dtnn_conv_bww_f32(const float *x, const float *dy, float *dw,
                       int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                       int64_t R, int64_t S, int64_t sh, int64_t sw,
                       int64_t ph, int64_t pw, int64_t dh, int64_t dwl,
                       int64_t Ho, int64_t Wo, int64_t G, float *ws)
{
    if (N <= 0 || Ho * Wo <= 0) {
        memset(dw, 0, sizeof(float) * K * (C / G) * R * S);
        return;
    }
#if DTNN_FUSED
    if (!dtnn_fused_supported())
        return;
    bww_avx512(x, dy, dw, N, C, H, W, K, R, S, sh, sw, ph, pw, dh, dwl, Ho, Wo, G, ws);
#else
    (void)x; (void)dy; (void)N; (void)C; (void)H; (void)W; (void)sh; (void)sw; (void)ph;
    (void)pw; (void)dh; (void)dwl; (void)Ho; (void)Wo; (void)G; (void)ws;
#endif
}

void dtnn_conv_fwd_f32(const float *x, const float *w, const float *bias, float *y,
                       int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                       int64_t R, int64_t S, int64_t sh, int64_t sw,
                       int64_t ph, int64_t pw, int64_t dh, int64_t dwl,
                       int64_t Ho, int64_t Wo, int64_t G,
                       int64_t w_gs, int64_t w_so, int64_t w_si, int64_t w_st, float *ws)
{
    if (N <= 0 || K <= 0 || Ho * Wo <= 0)
        return;
#if DTNN_FUSED
    if (!dtnn_fused_supported())
        return;
    conv_fwd_avx512(x, w, bias, y, N, C, H, W, K, R, S, sh, sw, ph, pw, dh, dwl, Ho, Wo, G,
                    w_gs, w_so, w_si, w_st, ws);
#else
    (void)x; (void)w; (void)bias; (void)y; (void)C; (void)H; (void)W; (void)R; (void)S;
    (void)sh; (void)sw; (void)ph; (void)pw; (void)dh; (void)dwl; (void)G; (void)w_gs;
    (void)w_so; (void)w_si; (void)w_st; (void)ws;
#endif
}
