/*
 * AVX2 + FMA pieces of the fused convolution kernels (see im2col_fused_ops.h and the
 * comment in im2col_fused.c), for x86-64 CPUs without AVX-512.  Compiled with
 * function-level target attributes, like the AVX-512 file.
 *
 * With 16 ymm registers the micro-tiles are 6 x 16 channels (12 accumulators, 2
 * vectors of the packed operand, 1 broadcast), the usual AVX2 GEMM shape.  The
 * layouts are the AVX-512 ones (k-tiles of 64 channels), so a k-tile of nv vectors of
 * 16 channels is nv micro-tiles side by side:
 *
 * Forward: per pixel tile, the nv 16-channel slices of the k-tile run one after the
 * other, so the 6 x (chunk rows) inputs they broadcast are reloaded from L1, and each
 * slice reads a 64-byte line per W^T row.  The reduction chunk is 64 rows (16 KiB of
 * W^T), half the AVX-512 one: AVX2-only CPUs have 32 KiB L1 data caches.
 * Backward-weights: the nv slices each sweep the block's Q pixels of dY^T (one line
 * per pixel and slice, streamed from L2).
 */
#include "im2col_fused_ops.h"

#if DTNN_FUSED_X86
#include <immintrin.h>

#include "dtnn_isa.h"

#define KT FUSED_KT
#define AVX2 DTNN_TARGET_AVX2
#define AVX2_INLINE static inline __attribute__((always_inline)) DTNN_TARGET_AVX2

static const int32_t mask_table[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

/* a mask of the first n (0..8) lanes */
AVX2_INLINE __m256i lanes8(int64_t n)
{
    n = n < 0 ? 0 : (n > 8 ? 8 : n);
    return _mm256_loadu_si256((const __m256i *)(mask_table + 8 - n));
}

/* in-register transpose of an 8x8 block: r[i][j] -> r[j][i] */
AVX2_INLINE void tr8(__m256 *r)
{
    __m256 t[8], s[8];
    int i;
    for (i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (i = 0; i < 8; i += 4) {
        s[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        s[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        s[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        s[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (i = 0; i < 4; ++i) {
        r[i] = _mm256_permute2f128_ps(s[i], s[i + 4], 0x20);
        r[i + 4] = _mm256_permute2f128_ps(s[i], s[i + 4], 0x31);
    }
}

/* rows i < ni of an 8-wide slab (n lanes valid; masked loads never touch the rest) */
AVX2_INLINE void load8(__m256 *r, const float *src, int64_t lds, int64_t ni, int64_t n)
{
    int i;
    if (n >= 8) {
        for (i = 0; i < 8; ++i)
            r[i] = i < ni ? _mm256_loadu_ps(src + i * lds) : _mm256_setzero_ps();
    } else {
        const __m256i m = lanes8(n);
        for (i = 0; i < 8; ++i)
            r[i] = i < ni ? _mm256_maskload_ps(src + i * lds, m) : _mm256_setzero_ps();
    }
}

AVX2_INLINE void store8(float *dst, __m256 v, int64_t n)
{
    if (n >= 8)
        _mm256_storeu_ps(dst, v);
    else
        _mm256_maskstore_ps(dst, lanes8(n), v);
}

AVX2 static void tr_block_avx2(const float *src, int64_t lds, int64_t ni, int64_t nj,
                               float *dst, int64_t ldd, int full_rows)
{
    int64_t ib, jb;
    for (ib = 0; ib < 16; ib += 8) {
        const int64_t ni8 = ni - ib < 0 ? 0 : (ni - ib > 8 ? 8 : ni - ib);
        if (ni8 == 0 && !full_rows)
            break;
        for (jb = 0; jb < nj; jb += 8) {
            const int64_t nj8 = nj - jb > 8 ? 8 : nj - jb;
            __m256 r[8];
            int64_t j;
            load8(r, src + ib * lds + jb, lds, ni8, nj8);
            tr8(r);
            for (j = 0; j < nj8; ++j)
                store8(dst + (jb + j) * ldd + ib, r[j], full_rows ? 8 : ni8);
        }
    }
}

AVX2 static void store_y_avx2(const float *src, int64_t lds, int64_t np, int64_t nk,
                              const float *bias, float *dst, int64_t P)
{
    int64_t pb, kb;
    for (pb = 0; pb < np; pb += 8) {
        const int64_t np8 = np - pb > 8 ? 8 : np - pb;
        for (kb = 0; kb < nk; kb += 8) {
            const int64_t nk8 = nk - kb > 8 ? 8 : nk - kb;
            __m256 r[8];
            int64_t i;
            load8(r, src + pb * lds + kb, lds, np8, 8);   /* Y^T rows are 64 wide */
            tr8(r);
            for (i = 0; i < nk8; ++i) {
                const __m256 b = _mm256_set1_ps(bias ? bias[kb + i] : 0.0f);
                store8(dst + (kb + i) * P + pb, _mm256_add_ps(r[i], b), np8);
            }
        }
    }
}

/* ---- forward micro-tile: 6 output pixels x 16 channels (2 vectors) ----------------- */
#define R6(X) X(0) X(1) X(2) X(3) X(4) X(5)

AVX2_INLINE void fw16(const float *xb, const int64_t *jo, int64_t J, const int32_t *idx,
                      const float *wt, float *yt, int acc)
{
#define FD(u) __m256 a##u##0 = _mm256_setzero_ps(), a##u##1 = a##u##0; \
    const int64_t i##u = idx[u];
    R6(FD)
    if (acc) {
#define FL(u) a##u##0 = _mm256_load_ps(yt + u * KT); a##u##1 = _mm256_load_ps(yt + u * KT + 8);
        R6(FL)
    }
    int64_t j;
    for (j = 0; j < J; ++j) {
        const float *xp = xb + jo[j];
        const __m256 w0 = _mm256_load_ps(wt), w1 = _mm256_load_ps(wt + 8);
        wt += KT;
#define FF(u) { const __m256 b = _mm256_broadcast_ss(xp + i##u); \
        a##u##0 = _mm256_fmadd_ps(b, w0, a##u##0); a##u##1 = _mm256_fmadd_ps(b, w1, a##u##1); }
        R6(FF)
    }
#define FS(u) _mm256_store_ps(yt + u * KT, a##u##0); _mm256_store_ps(yt + u * KT + 8, a##u##1);
    R6(FS)
}

AVX2 static void fw_tiles_avx2(int nv, const float *xg, const int64_t *jo, int64_t nj,
                               const int32_t *pidx, int64_t Qb, int64_t t0, int64_t t1,
                               const float *wt, float *yt, int acc)
{
    int64_t tt;
    for (tt = t0; tt < t1; ++tt) {
        const int64_t q0 = tt * FUSED_ROWS;
        int32_t idx[FUSED_ROWS];
        int u, v;
        for (u = 0; u < FUSED_ROWS; ++u)
            idx[u] = pidx[q0 + u < Qb ? q0 + u : q0];
        for (v = 0; v < nv; ++v)
            fw16(xg, jo, nj, idx, wt + 16 * v, yt + q0 * KT + 16 * v, acc);
    }
}

/* ---- backward-weights micro-tile: 6 (channel, tap) rows x 16 channels -------------- */
AVX2_INLINE void bw16(const float *const *xr, const int32_t *pidx, int64_t Q, const float *d,
                      float *c, int64_t ldc, int rows, int acc)
{
#define BD(i) __m256 a##i##0 = _mm256_setzero_ps(), a##i##1 = a##i##0; const float *x##i = xr[i];
    R6(BD)
    int64_t q;
    for (q = 0; q < Q; ++q) {
        const int64_t idx = pidx[q];
        const __m256 d0 = _mm256_load_ps(d), d1 = _mm256_load_ps(d + 8);
        d += KT;
#define BF(i) { const __m256 b = _mm256_broadcast_ss(x##i + idx); \
        a##i##0 = _mm256_fmadd_ps(b, d0, a##i##0); a##i##1 = _mm256_fmadd_ps(b, d1, a##i##1); }
        R6(BF)
    }
#define BA(i, u) _mm256_storeu_ps(cr + 8 * u, acc ? _mm256_add_ps(_mm256_loadu_ps(cr + 8 * u), \
                                                                  a##i##u) : a##i##u)
#define BS(i) if (i < rows) { float *cr = c + i * ldc; BA(i, 0); BA(i, 1); }
    R6(BS)
}

AVX2 static void bw_tile_avx2(int nv, const float *const *xr, const int32_t *pidx, int64_t Q,
                              const float *d, float *c, int64_t ldc, int rows, int acc)
{
    int v;
    for (v = 0; v < nv; ++v)
        bw16(xr, pidx, Q, d + 16 * v, c + 16 * v, ldc, rows, acc);
}

/* ---- direct kernels (short reductions): output pixels in vectors of 8 -------------- */
#define DF_K 6  /* forward tile: 6 output channels x 2 vectors of 8 pixels (12 ymm) */
#define DF_V 2
#define DB_K 2  /* backward-weights tile: 2 output channels x 3 (channel, tap) rows x */
#define DB_J 3  /* 16 pixel lanes (12 ymm) */

/* kn x pv accumulators; per reduction row pv input loads and kn filter broadcasts */
AVX2_INLINE void dfw_tile(const int kn, const int pv, const float *xp, const int64_t *jo,
                          int64_t J, const float *wk, const float *bias, const int64_t *xo,
                          float *const *yo, const int64_t *nl, int64_t P)
{
    __m256 a[DF_K][DF_V];
    int k, v;
    int64_t j;
#pragma GCC unroll 6
    for (k = 0; k < kn; ++k) {
        const __m256 b = _mm256_set1_ps(bias ? bias[k] : 0.0f);
#pragma GCC unroll 2
        for (v = 0; v < pv; ++v)
            a[k][v] = b;
    }
    for (j = 0; j < J; ++j) {
        const float *xj = xp + jo[j];
        __m256 xv[DF_V];
#pragma GCC unroll 2
        for (v = 0; v < pv; ++v)
            xv[v] = _mm256_loadu_ps(xj + xo[v]);
#pragma GCC unroll 6
        for (k = 0; k < kn; ++k) {
            const __m256 w = _mm256_broadcast_ss(wk + k * J + j);
#pragma GCC unroll 2
            for (v = 0; v < pv; ++v)
                a[k][v] = _mm256_fmadd_ps(w, xv[v], a[k][v]);
        }
    }
#pragma GCC unroll 6
    for (k = 0; k < kn; ++k)
#pragma GCC unroll 2
        for (v = 0; v < pv; ++v)
            store8(yo[v] + k * P, a[k][v], nl[v]);
}

AVX2 static void dfw_image_avx2(const float *xp, int64_t rs, const int64_t *jo, int64_t J,
                                const float *wk, const float *bias, int64_t nk, float *y,
                                int64_t Ho, int64_t Wo)
{
    const int64_t nvr = (Wo + 7) / 8, L = Ho * nvr, P = Ho * Wo;
    int64_t k0, l;
    for (k0 = 0; k0 < nk; k0 += DF_K) {
        const int kn = nk - k0 < DF_K ? (int)(nk - k0) : DF_K;
        const float *w0 = wk + k0 * J, *b0 = bias ? bias + k0 : NULL;
        for (l = 0; l < L; l += DF_V) {
            const int pv = L - l < DF_V ? (int)(L - l) : DF_V;
            int64_t xo[DF_V], nl[DF_V];
            float *yo[DF_V];
            int v;
            for (v = 0; v < DF_V; ++v) {
                const int64_t lv = l + (v < pv ? v : 0), ho = lv / nvr, wo = lv % nvr * 8;
                xo[v] = ho * rs + wo;
                yo[v] = y + k0 * P + ho * Wo + wo;
                nl[v] = Wo - wo;
            }
#define DFW_CASE(K_, V_) case K_ * 4 + V_: dfw_tile(K_, V_, xp, jo, J, w0, b0, xo, yo, nl, P); break;
            switch (kn * 4 + pv) {
                DFW_CASE(1, 1) DFW_CASE(1, 2) DFW_CASE(2, 1) DFW_CASE(2, 2)
                DFW_CASE(3, 1) DFW_CASE(3, 2) DFW_CASE(4, 1) DFW_CASE(4, 2)
                DFW_CASE(5, 1) DFW_CASE(5, 2) DFW_CASE(6, 1) DFW_CASE(6, 2)
            }
#undef DFW_CASE
        }
    }
}

/* lo + hi summed in the order of the AVX-512 kernel's hsum16 (lanes l and l + 8, then
 * halves, then pairs): the two paths give the same floats */
AVX2_INLINE float hsum16(__m256 lo, __m256 hi)
{
    const __m256 t = _mm256_add_ps(lo, hi);
    const __m128 u = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
    const __m128 v = _mm_add_ps(u, _mm_movehl_ps(u, u));
    return _mm_cvtss_f32(_mm_add_ss(v, _mm_movehdup_ps(v)));
}

/* x in a register: left to itself gcc folds the load into each of the kn FMAs that
 * use it, and the tile becomes load-bound (unaligned loads of x split cache lines) */
#define KEEP(v) __asm__("" : "+x"(v))

/* kn x jn accumulators of 16 pixel lanes (two ymm halves, like the AVX-512 kernel's
 * zmm) over the whole image; per 8 pixels kn dy loads and jn input loads, masked on
 * the row's last vector (its lanes past the row are zero in both) */
#define DB_STEP(LOAD, OFF) { \
        __m256 dv[DB_K]; \
        _Pragma("GCC unroll 2") for (k = 0; k < kn; ++k) dv[k] = LOAD(d + k * P + (OFF)); \
        _Pragma("GCC unroll 3") for (i = 0; i < jn; ++i) { \
            __m256 x = LOAD(xj[i] + xo + (OFF)); \
            KEEP(x); \
            _Pragma("GCC unroll 2") for (k = 0; k < kn; ++k) \
                a[k][i][h] = _mm256_fmadd_ps(x, dv[k], a[k][i][h]); } }

AVX2_INLINE void dbw_tile(const int kn, const int jn, const float *xp, const int64_t *jo,
                          int64_t J, const float *dy, int64_t rs, int64_t Ho, int64_t Wo,
                          float *dw)
{
    const int64_t P = Ho * Wo, nf = Wo / 16, rem = Wo % 16;
    const __m256i m0 = lanes8(rem), m1 = lanes8(rem - 8);
    __m256 a[DB_K][DB_J][2];
    const float *xj[DB_J];
    int k, i, h;
    int64_t ho, v;
#pragma GCC unroll 3
    for (i = 0; i < jn; ++i) {
        xj[i] = xp + jo[i];
#pragma GCC unroll 2
        for (k = 0; k < kn; ++k)
            a[k][i][0] = a[k][i][1] = _mm256_setzero_ps();
    }
    for (ho = 0; ho < Ho; ++ho) {
        const float *d = dy + ho * Wo;
        const int64_t xo = ho * rs;
        for (v = 0; v < nf; ++v) {
            h = 0;
            DB_STEP(_mm256_loadu_ps, v * 16)
            h = 1;
            DB_STEP(_mm256_loadu_ps, v * 16 + 8)
        }
        if (rem) {
#define LOAD_M0(p) _mm256_maskload_ps((p), m0)
#define LOAD_M1(p) _mm256_maskload_ps((p), m1)
            h = 0;
            DB_STEP(LOAD_M0, nf * 16)
            h = 1;
            DB_STEP(LOAD_M1, nf * 16 + 8)
#undef LOAD_M0
#undef LOAD_M1
        }
    }
#pragma GCC unroll 2
    for (k = 0; k < kn; ++k)
#pragma GCC unroll 3
        for (i = 0; i < jn; ++i)
            dw[k * J + i] += hsum16(a[k][i][0], a[k][i][1]);
}
#undef DB_STEP

#define DBW_TARGET AVX2
#define DBW_IMAGE_NAME dbw_image_avx2
#define DBW_CASES DBW_CASE(1, 1) DBW_CASE(1, 2) DBW_CASE(1, 3) \
                  DBW_CASE(2, 1) DBW_CASE(2, 2) DBW_CASE(2, 3)
#include "im2col_fused_dbw_tmpl.h"
#undef DBW_CASES
#undef DBW_IMAGE_NAME
#undef DBW_TARGET

/* Pointwise backward-weights tile: kn (<= 4) output channels x cn (<= 3) input channels
 * of 8 pixel lanes, 12 ymm; per 8 pixels kn dy loads (rows kept in L1) and cn x loads
 * (from L2), both kept in registers (KEEP: gcc otherwise folds a load into each FMA).
 * 8 lanes, not the AVX-512 tile's 16 (two ymm per output, 10 loads per 12 FMAs): 0.78
 * vs 0.95 of torch's time on 128->256 at 16x16, 1 thread; the dW of the two paths then
 * differ in rounding. */
#define PW_K 4
#define PW_C 3
#define PW_STEP(LOAD, OFF) { \
        __m256 xv[PW_C]; \
        _Pragma("GCC unroll 3") for (i = 0; i < cn; ++i) { \
            xv[i] = LOAD(x + i * ldx + (OFF)); \
            KEEP(xv[i]); } \
        _Pragma("GCC unroll 4") for (k = 0; k < kn; ++k) { \
            __m256 dv = LOAD(d + k * ldd + (OFF)); \
            KEEP(dv); \
            _Pragma("GCC unroll 3") for (i = 0; i < cn; ++i) \
                a[k][i] = _mm256_fmadd_ps(xv[i], dv, a[k][i]); } }

AVX2_INLINE float hsum8(__m256 t)
{
    const __m128 u = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
    const __m128 v = _mm_add_ps(u, _mm_movehl_ps(u, u));
    return _mm_cvtss_f32(_mm_add_ss(v, _mm_movehdup_ps(v)));
}

AVX2_INLINE void pw_tile(const int kn, const int cn, const float *x0, int64_t ldx,
                         int64_t sx, const float *d0, int64_t ldd, int64_t sd, int64_t nimg,
                         int64_t np, float *dw, int64_t ldw)
{
    const int64_t nf = np / 8, rem = np % 8;
    const __m256i m0 = lanes8(rem);
    __m256 a[PW_K][PW_C];
    int k, i;
    int64_t v, m;
#pragma GCC unroll 4
    for (k = 0; k < kn; ++k)
#pragma GCC unroll 3
        for (i = 0; i < cn; ++i)
            a[k][i] = _mm256_setzero_ps();
    for (m = 0; m < nimg; ++m) {
        const float *x = x0 + m * sx, *d = d0 + m * sd;
        for (v = 0; v < nf; ++v)
            PW_STEP(_mm256_loadu_ps, v * 8)
        if (rem) {
#define LOAD_M0(p) _mm256_maskload_ps((p), m0)
            PW_STEP(LOAD_M0, nf * 8)
#undef LOAD_M0
        }
    }
#pragma GCC unroll 4
    for (k = 0; k < kn; ++k)
#pragma GCC unroll 3
        for (i = 0; i < cn; ++i)
            dw[k * ldw + i] += hsum8(a[k][i]);
}
#undef PW_STEP

/* db: 16 lanes (two halves), reduced by hsum16, like the AVX-512 path: the same floats */
AVX2_INLINE float pw_rowsum(const float *d0, int64_t sd, int64_t nimg, int64_t np)
{
    const int64_t nf = np / 16, rem = np % 16;
    const __m256i m0 = lanes8(rem), m1 = lanes8(rem - 8);
    __m256 lo = _mm256_setzero_ps(), hi = lo;
    int64_t v, m;
    for (m = 0; m < nimg; ++m) {
        const float *d = d0 + m * sd;
        for (v = 0; v < nf; ++v) {
            lo = _mm256_add_ps(lo, _mm256_loadu_ps(d + v * 16));
            hi = _mm256_add_ps(hi, _mm256_loadu_ps(d + v * 16 + 8));
        }
        if (rem) {
            lo = _mm256_add_ps(lo, _mm256_maskload_ps(d + nf * 16, m0));
            hi = _mm256_add_ps(hi, _mm256_maskload_ps(d + nf * 16 + 8, m1));
        }
    }
    return hsum16(lo, hi);
}

#define PW_TARGET AVX2
#define PW_NAME pwbw_avx2
#define PW_CASES PW_CASE(1, 1) PW_CASE(1, 2) PW_CASE(1, 3) PW_CASE(2, 1) PW_CASE(2, 2) \
                 PW_CASE(2, 3) PW_CASE(3, 1) PW_CASE(3, 2) PW_CASE(3, 3) PW_CASE(4, 1) \
                 PW_CASE(4, 2) PW_CASE(4, 3)
#include "im2col_fused_pw_tmpl.h"
#undef PW_CASES
#undef PW_NAME
#undef PW_TARGET

const dtnn_fused_ops dtnn_fused_ops_avx2 = {
    "avx2", tr_block_avx2, store_y_avx2, fw_tiles_avx2, bw_tile_avx2, 64,
    dfw_image_avx2, dbw_image_avx2, pwbw_avx2};

#endif /* DTNN_FUSED_X86 */
