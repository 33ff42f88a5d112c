/*
 * AVX-512 pieces of the fused convolution kernels (see im2col_fused_ops.h and the
 * comment in im2col_fused.c).  Compiled with function-level target attributes, so the
 * object is safe to link into a baseline x86-64 build; the driver only calls these
 * when dtnn_isa_active() (or an explicit request) allows AVX-512.
 *
 * Forward micro-tile: 6 output pixels x 4 vectors of 16 output channels (24 zmm
 * accumulators); per (channel, tap) row it broadcasts 6 padded inputs and loads 4
 * vectors of W^T.  Backward-weights micro-tile: 6 (channel, tap) rows x 4 vectors of
 * 16 output channels, broadcasting one padded input per row and pixel and
 * accumulating over the whole pixel block in registers.
 */
#include "im2col_fused_ops.h"

#if DTNN_FUSED_X86
#include <immintrin.h>

#include "dtnn_isa.h"

#define BW_KT FUSED_KT
#define DTNN_AVX512 DTNN_TARGET_AVX512
#define DTNN_INLINE static inline __attribute__((always_inline))

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

DTNN_AVX512 static void tr_block_avx512(const float *src, int64_t lds, int64_t ni, int64_t nj,
                                        float *dst, int64_t ldd, int full_rows)
{
    tr_block(src, lds, ni, nj, dst, ldd, full_rows);
}

DTNN_AVX512 static void store_y_avx512(const float *src, int64_t lds, int64_t np, int64_t nk,
                                       const float *bias, float *dst, int64_t P)
{
    const __mmask16 mp = lanes(np);
    __m512 r[16];
    int i;
    for (i = 0; i < 16; ++i)
        r[i] = i < np ? _mm512_load_ps(src + i * lds) : _mm512_setzero_ps();
    tr16(r);
    for (i = 0; i < nk; ++i) {
        const __m512 b = _mm512_set1_ps(bias ? bias[i] : 0.0f);
        _mm512_mask_storeu_ps(dst + i * P, mp, _mm512_add_ps(r[i], b));
    }
}

DTNN_AVX512 static void fw_tiles_avx512(int nv, const float *xg, const int64_t *jo, int64_t nj,
                                        const int32_t *pidx, int64_t Qb, int64_t t0,
                                        int64_t t1, const float *wt, float *yt, int acc)
{
    int64_t tt;
    for (tt = t0; tt < t1; ++tt) {
        const int64_t q0 = tt * FUSED_ROWS;
        float *y = yt + q0 * BW_KT;
        int32_t idx[FUSED_ROWS];
        int u;
        for (u = 0; u < FUSED_ROWS; ++u)
            idx[u] = pidx[q0 + u < Qb ? q0 + u : q0];
        switch (nv) {
        case 4: fw_tile(4, xg, jo, nj, idx, wt, y, acc); break;
        case 3: fw_tile(3, xg, jo, nj, idx, wt, y, acc); break;
        case 2: fw_tile(2, xg, jo, nj, idx, wt, y, acc); break;
        default: fw_tile(1, xg, jo, nj, idx, wt, y, acc); break;
        }
    }
}

DTNN_AVX512 static void bw_tile_avx512(int nv, const float *const *xr, const int32_t *pidx,
                                       int64_t Q, const float *d, float *c, int64_t ldc,
                                       int rows, int acc)
{
    switch (nv) {
    case 4: bw_tile(4, xr, pidx, Q, d, c, ldc, rows, acc); break;
    case 3: bw_tile(3, xr, pidx, Q, d, c, ldc, rows, acc); break;
    case 2: bw_tile(2, xr, pidx, Q, d, c, ldc, rows, acc); break;
    default: bw_tile(1, xr, pidx, Q, d, c, ldc, rows, acc); break;
    }
}

/* ---- direct kernels (short reductions): output pixels in vectors of 16 ------------- */
#define DF_K 6  /* forward tile: 6 output channels x 4 vectors of 16 pixels (24 zmm) */
#define DF_V 4
#define DB_K 4  /* backward-weights tile: 4 output channels x 6 (channel, tap) rows */
#define DB_J 6

DTNN_INLINE DTNN_AVX512 void
dfw_tile(const int kn, const int pv, const float *xp, const int64_t *jo, int64_t J,
         const float *wk, const float *bias, const int64_t *xo, float *const *yo,
         const __mmask16 *ml, int64_t P)
{
    __m512 a[DF_K][DF_V];
    int k, v;
    int64_t j;
#pragma GCC unroll 6
    for (k = 0; k < kn; ++k) {
        const __m512 b = _mm512_set1_ps(bias ? bias[k] : 0.0f);
#pragma GCC unroll 4
        for (v = 0; v < pv; ++v)
            a[k][v] = b;
    }
    for (j = 0; j < J; ++j) {
        const float *xj = xp + jo[j];
        __m512 xv[DF_V];
#pragma GCC unroll 4
        for (v = 0; v < pv; ++v)
            xv[v] = _mm512_loadu_ps(xj + xo[v]);
#pragma GCC unroll 6
        for (k = 0; k < kn; ++k) {
            const __m512 w = _mm512_set1_ps(wk[k * J + j]);
#pragma GCC unroll 4
            for (v = 0; v < pv; ++v)
                a[k][v] = _mm512_fmadd_ps(w, xv[v], a[k][v]);
        }
    }
#pragma GCC unroll 6
    for (k = 0; k < kn; ++k)
#pragma GCC unroll 4
        for (v = 0; v < pv; ++v)
            _mm512_mask_storeu_ps(yo[v] + k * P, ml[v], a[k][v]);
}

DTNN_AVX512 static void dfw_image_avx512(const float *xp, int64_t rs, const int64_t *jo,
                                         int64_t J, const float *wk, const float *bias,
                                         int64_t nk, float *y, int64_t Ho, int64_t Wo)
{
    const int64_t nvr = (Wo + 15) / 16, L = Ho * nvr, P = Ho * Wo;
    int64_t k0, l;
    for (k0 = 0; k0 < nk; k0 += DF_K) {
        const int kn = nk - k0 < DF_K ? (int)(nk - k0) : DF_K;
        const float *w0 = wk + k0 * J, *b0 = bias ? bias + k0 : NULL;
        for (l = 0; l < L; l += DF_V) {
            const int pv = L - l < DF_V ? (int)(L - l) : DF_V;
            int64_t xo[DF_V];
            __mmask16 ml[DF_V];
            float *yo[DF_V];
            int v;
            for (v = 0; v < DF_V; ++v) {
                const int64_t lv = l + (v < pv ? v : 0), ho = lv / nvr, wo = lv % nvr * 16;
                xo[v] = ho * rs + wo;
                yo[v] = y + k0 * P + ho * Wo + wo;
                ml[v] = lanes(Wo - wo);
            }
#define DFW_CASE(K_, V_) case K_ * 8 + V_: dfw_tile(K_, V_, xp, jo, J, w0, b0, xo, yo, ml, P); break;
            switch (kn * 8 + pv) {
                DFW_CASE(1, 1) DFW_CASE(1, 2) DFW_CASE(1, 3) DFW_CASE(1, 4)
                DFW_CASE(2, 1) DFW_CASE(2, 2) DFW_CASE(2, 3) DFW_CASE(2, 4)
                DFW_CASE(3, 1) DFW_CASE(3, 2) DFW_CASE(3, 3) DFW_CASE(3, 4)
                DFW_CASE(4, 1) DFW_CASE(4, 2) DFW_CASE(4, 3) DFW_CASE(4, 4)
                DFW_CASE(5, 1) DFW_CASE(5, 2) DFW_CASE(5, 3) DFW_CASE(5, 4)
                DFW_CASE(6, 1) DFW_CASE(6, 2) DFW_CASE(6, 3) DFW_CASE(6, 4)
            }
#undef DFW_CASE
        }
    }
}

/* lanes l and l + 8 summed, then halves, then pairs (the AVX2 kernel's order) */
DTNN_INLINE DTNN_AVX512 float hsum16(__m512 a)
{
    const __m256 t = _mm256_add_ps(_mm512_castps512_ps256(a),
                                   _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
    const __m128 u = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
    const __m128 v = _mm_add_ps(u, _mm_movehl_ps(u, u));
    return _mm_cvtss_f32(_mm_add_ss(v, _mm_movehdup_ps(v)));
}

/* kn x jn accumulators of 16 pixel lanes over the whole image; the row's last, partial
 * vector loads dy and x with its lanes past the row zeroed */
DTNN_INLINE DTNN_AVX512 void
dbw_tile(const int kn, const int jn, const float *xp, const int64_t *jo, int64_t J,
         const float *dy, int64_t rs, int64_t Ho, int64_t Wo, float *dw)
{
    const int64_t P = Ho * Wo, nf = Wo / 16, rem = Wo % 16;
    const __mmask16 m = lanes(rem);
    __m512 a[DB_K][DB_J];
    const float *xj[DB_J];
    int k, i;
    int64_t ho, v;
#pragma GCC unroll 6
    for (i = 0; i < jn; ++i) {
        xj[i] = xp + jo[i];
#pragma GCC unroll 4
        for (k = 0; k < kn; ++k)
            a[k][i] = _mm512_setzero_ps();
    }
    for (ho = 0; ho < Ho; ++ho) {
        const float *d = dy + ho * Wo;
        const int64_t xo = ho * rs;
        for (v = 0; v < nf; ++v) {
            __m512 dv[DB_K];
#pragma GCC unroll 4
            for (k = 0; k < kn; ++k)
                dv[k] = _mm512_loadu_ps(d + k * P + v * 16);
#pragma GCC unroll 6
            for (i = 0; i < jn; ++i) {
                __m512 x = _mm512_loadu_ps(xj[i] + xo + v * 16);
                __asm__("" : "+v"(x));  /* one load, kn FMAs (see the AVX2 file) */
#pragma GCC unroll 4
                for (k = 0; k < kn; ++k)
                    a[k][i] = _mm512_fmadd_ps(x, dv[k], a[k][i]);
            }
        }
        if (rem) {
            __m512 dv[DB_K];
#pragma GCC unroll 4
            for (k = 0; k < kn; ++k)
                dv[k] = _mm512_maskz_loadu_ps(m, d + k * P + nf * 16);
#pragma GCC unroll 6
            for (i = 0; i < jn; ++i) {
                __m512 x = _mm512_maskz_loadu_ps(m, xj[i] + xo + nf * 16);
                __asm__("" : "+v"(x));
#pragma GCC unroll 4
                for (k = 0; k < kn; ++k)
                    a[k][i] = _mm512_fmadd_ps(x, dv[k], a[k][i]);
            }
        }
    }
#pragma GCC unroll 4
    for (k = 0; k < kn; ++k)
#pragma GCC unroll 6
        for (i = 0; i < jn; ++i)
            dw[k * J + i] += hsum16(a[k][i]);
}

#define DBW_TARGET DTNN_AVX512
#define DBW_IMAGE_NAME dbw_image_avx512
#define DBW_CASES DBW_CASE(1, 1) DBW_CASE(1, 2) DBW_CASE(1, 3) DBW_CASE(1, 4) DBW_CASE(1, 5) DBW_CASE(1, 6) \
    DBW_CASE(2, 1) DBW_CASE(2, 2) DBW_CASE(2, 3) DBW_CASE(2, 4) DBW_CASE(2, 5) DBW_CASE(2, 6) \
    DBW_CASE(3, 1) DBW_CASE(3, 2) DBW_CASE(3, 3) DBW_CASE(3, 4) DBW_CASE(3, 5) DBW_CASE(3, 6) \
    DBW_CASE(4, 1) DBW_CASE(4, 2) DBW_CASE(4, 3) DBW_CASE(4, 4) DBW_CASE(4, 5) DBW_CASE(4, 6)
#include "im2col_fused_dbw_tmpl.h"
#undef DBW_CASES
#undef DBW_IMAGE_NAME
#undef DBW_TARGET

/* Pointwise backward-weights tile: kn (<= 6) output channels x cn (<= 4) input channels
 * of 16 pixel lanes, 24 zmm; per 16 pixels kn dy loads (rows kept in L1) and cn x loads
 * (from L2), one FMA per term */
#define PW_K 6
#define PW_C 4
#define PW_STEP(LOAD) { \
        __m512 dv[PW_K]; \
        _Pragma("GCC unroll 6") for (k = 0; k < kn; ++k) { \
            dv[k] = LOAD(d + k * ldd + o); \
            __asm__("" : "+v"(dv[k])); } \
        _Pragma("GCC unroll 4") for (i = 0; i < cn; ++i) { \
            __m512 xv = LOAD(x + i * ldx + o); \
            __asm__("" : "+v"(xv)); \
            _Pragma("GCC unroll 6") for (k = 0; k < kn; ++k) \
                a[k][i] = _mm512_fmadd_ps(xv, dv[k], a[k][i]); } }

DTNN_INLINE DTNN_AVX512 void
pw_tile(const int kn, const int cn, const float *x0, int64_t ldx, int64_t sx,
        const float *d0, int64_t ldd, int64_t sd, int64_t nimg, int64_t np, float *dw,
        int64_t ldw)
{
    const int64_t nf = np / 16, rem = np % 16;
    const __mmask16 mk = lanes(rem);
    __m512 a[PW_K][PW_C];
    int k, i;
    int64_t v, o, m;
#pragma GCC unroll 6
    for (k = 0; k < kn; ++k)
#pragma GCC unroll 4
        for (i = 0; i < cn; ++i)
            a[k][i] = _mm512_setzero_ps();
    for (m = 0; m < nimg; ++m) {
        const float *x = x0 + m * sx, *d = d0 + m * sd;
        for (v = 0; v < nf; ++v) {
            o = v * 16;
            PW_STEP(_mm512_loadu_ps)
        }
        if (rem) {
#define LOAD_M(p) _mm512_maskz_loadu_ps(mk, (p))
            o = nf * 16;
            PW_STEP(LOAD_M)
#undef LOAD_M
        }
    }
#pragma GCC unroll 6
    for (k = 0; k < kn; ++k)
#pragma GCC unroll 4
        for (i = 0; i < cn; ++i)
            dw[k * ldw + i] += hsum16(a[k][i]);
}
#undef PW_STEP

/* sum of np floats of nimg rows sd apart in 16 lanes, reduced by hsum16 (the AVX2
 * path's sums) */
DTNN_INLINE DTNN_AVX512 float pw_rowsum(const float *d0, int64_t sd, int64_t nimg, int64_t np)
{
    const int64_t nf = np / 16, rem = np % 16;
    const __mmask16 mk = lanes(rem);
    __m512 s = _mm512_setzero_ps();
    int64_t v, m;
    for (m = 0; m < nimg; ++m) {
        const float *d = d0 + m * sd;
        for (v = 0; v < nf; ++v)
            s = _mm512_add_ps(s, _mm512_loadu_ps(d + v * 16));
        if (rem)
            s = _mm512_add_ps(s, _mm512_maskz_loadu_ps(mk, d + nf * 16));
    }
    return hsum16(s);
}

#define PW_TARGET DTNN_AVX512
#define PW_NAME pwbw_avx512
#define PW_CASES PW_CASE(1, 1) PW_CASE(1, 2) PW_CASE(1, 3) PW_CASE(1, 4) \
    PW_CASE(2, 1) PW_CASE(2, 2) PW_CASE(2, 3) PW_CASE(2, 4) \
    PW_CASE(3, 1) PW_CASE(3, 2) PW_CASE(3, 3) PW_CASE(3, 4) \
    PW_CASE(4, 1) PW_CASE(4, 2) PW_CASE(4, 3) PW_CASE(4, 4) \
    PW_CASE(5, 1) PW_CASE(5, 2) PW_CASE(5, 3) PW_CASE(5, 4) \
    PW_CASE(6, 1) PW_CASE(6, 2) PW_CASE(6, 3) PW_CASE(6, 4)
#include "im2col_fused_pw_tmpl.h"
#undef PW_CASES
#undef PW_NAME
#undef PW_TARGET

/* a chunk of 128 rows of W^T is 32 KiB: it stays in L1 while the pixel tiles sweep it */
const dtnn_fused_ops dtnn_fused_ops_avx512 = {
    "avx512", tr_block_avx512, store_y_avx512, fw_tiles_avx512, bw_tile_avx512, 128,
    dfw_image_avx512, dbw_image_avx512, pwbw_avx512};

#endif /* DTNN_FUSED_X86 */
