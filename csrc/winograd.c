/*
 * Winograd F(2x2,3x3) and F(4x4,3x3) filter, input and output transforms, and for
 * backward-weights the output-gradient and filter-gradient transforms (their adjoints;
 * see winograd.h for the layouts).
 *
 * Every transform works on LANES-wide vectors.  The input and output transforms work
 * on strips: strip q = i*nb + n is tile row i of image n (Q = th*nb strips per chunk),
 * and tile t = j*Q + q is tile j of strip q, so LANES consecutive strips of one tile
 * column j and one channel are LANES consecutive floats of V and of M.  The vectors
 * are full whenever th*nb is a multiple of LANES (any batch of 16, or one 32x32 image
 * with F(2x2)), so small batches vectorise too.  A job is one channel and a group of
 * blocks of LANES strips (see plan_jobs); it owns a disjoint slice of V (input
 * transform) or of y (output transform), so threads never share output.
 *
 * Input job: the alpha image rows of each lane's strip are gathered, interleaved by
 * lane and zero padded, into rows[alpha][Wp][LANES] (padding costs nothing
 * afterwards); B^T runs down every column of the strips at once, then B across each
 * tile, writing LANES-wide vectors straight into V.
 * Output job: A^T then A on LANES-wide vectors loaded straight from M, into
 * ob[m][tw*m][LANES] whose rows are then written (cropped, + bias) to the images.
 * Filter job: LANES filters w[k][c0..] at a time, straight into U.
 * Output-gradient job (backward-weights): the input job's strips on dy's m x m tiles,
 * A down then A across, into D (alpha², K, T) laid out like V.
 * Filter-gradient job: LANES filters' alpha² values from dU, G^T down then across, 9
 * taps each scattered (or added) to dw[k][c0..].
 * The (de)interleaving is done with 8x8 in-register transposes when AVX2 is there.
 *
 * The 1-D transforms are written out with shared subexpressions on GCC/Clang vector
 * types.  The callers are compiled for AVX-512/AVX2 with a generic fallback (GCC
 * function multi-versioning), so one binary runs everywhere.
 */
#include <stdlib.h>
#include <string.h>

#include "winograd.h"
#include "dtnn_isa.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#define LANES WINO_LANES
#define AMAX 6
#define OMP_MIN_WORK ((int64_t)32768)

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define DTNN_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define DTNN_CLONES
#endif

#if defined(__GNUC__)
#define INLINE static inline __attribute__((always_inline))
#else
#define INLINE static inline
#endif

/* --- LANES-wide vectors ---------------------------------------------------------------- */
#if defined(__GNUC__)
/* GCC/Clang vector extension: one zmm with AVX-512, two ymm with AVX2, ...  Every function
 * taking or returning one is inlined, so the psABI note about passing them is moot. */
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float vf __attribute__((vector_size(4 * LANES), aligned(4), __may_alias__));
INLINE vf vld(const float *p) { return *(const vf *)p; }
INLINE void vst(float *p, vf a) { *(vf *)p = a; }
INLINE vf vadd(vf a, vf b) { return a + b; }
INLINE vf vsub(vf a, vf b) { return a - b; }
INLINE vf vmul(float s, vf a) { return s * a; }
INLINE vf vset(float s) { return (vf){0} + s; }
#else
typedef struct { float v[LANES]; } vf;
#define VMAP(expr) { vf r; for (int l = 0; l < LANES; ++l) r.v[l] = (expr); return r; }
INLINE vf vld(const float *p) VMAP(p[l])
INLINE void vst(float *p, vf a) { memcpy(p, a.v, sizeof a.v); }
INLINE vf vadd(vf a, vf b) VMAP(a.v[l] + b.v[l])
INLINE vf vsub(vf a, vf b) VMAP(a.v[l] - b.v[l])
INLINE vf vmul(float s, vf a) VMAP(s * a.v[l])
INLINE vf vset(float s) VMAP(s)
#endif

/* --- 1-D transforms of LANES-wide vectors: element k is the vector at p + k*s ----------- */

/* d (alpha) -> B^T d (alpha) */
INLINE void bt_1d(int m, const float *d, int64_t ds, float *r, int64_t rs)
{
    if (m == 4) {
        const vf d0 = vld(d), d1 = vld(d + ds), d2 = vld(d + 2 * ds), d3 = vld(d + 3 * ds),
                 d4 = vld(d + 4 * ds), d5 = vld(d + 5 * ds);
        const vf s12 = vadd(d1, d2), s34 = vadd(d3, d4), t12 = vsub(d1, d2);
        const vf t43 = vsub(d4, d3), t42 = vsub(d4, d2), t31 = vsub(d3, d1);
        vst(r, vadd(vsub(vmul(4.0f, d0), vmul(5.0f, d2)), d4));
        vst(r + rs, vsub(s34, vmul(4.0f, s12)));
        vst(r + 2 * rs, vadd(t43, vmul(4.0f, t12)));
        vst(r + 3 * rs, vadd(t42, vmul(2.0f, t31)));
        vst(r + 4 * rs, vsub(t42, vmul(2.0f, t31)));
        vst(r + 5 * rs, vadd(vsub(vmul(4.0f, d1), vmul(5.0f, d3)), d5));
    } else {
        const vf d0 = vld(d), d1 = vld(d + ds), d2 = vld(d + 2 * ds), d3 = vld(d + 3 * ds);
        vst(r, vsub(d0, d2));
        vst(r + rs, vadd(d1, d2));
        vst(r + 2 * rs, vsub(d2, d1));
        vst(r + 3 * rs, vsub(d1, d3));
    }
}

/* M (alpha) -> A^T M (m), plus b */
INLINE void at_1d(int m, const float *d, int64_t ds, float *r, int64_t rs, vf b)
{
    if (m == 4) {
        const vf d0 = vld(d), d1 = vld(d + ds), d2 = vld(d + 2 * ds), d3 = vld(d + 3 * ds),
                 d4 = vld(d + 4 * ds), d5 = vld(d + 5 * ds);
        const vf s12 = vadd(d1, d2), t12 = vsub(d1, d2), s34 = vadd(d3, d4);
        const vf t34 = vsub(d3, d4);
        vst(r, vadd(vadd(vadd(d0, s12), s34), b));
        vst(r + rs, vadd(vadd(t12, vmul(2.0f, t34)), b));
        vst(r + 2 * rs, vadd(vadd(s12, vmul(4.0f, s34)), b));
        vst(r + 3 * rs, vadd(vadd(vadd(t12, vmul(8.0f, t34)), d5), b));
    } else {
        const vf d0 = vld(d), d1 = vld(d + ds), d2 = vld(d + 2 * ds), d3 = vld(d + 3 * ds);
        vst(r, vadd(vadd(vadd(d0, d1), d2), b));
        vst(r + rs, vadd(vsub(vsub(d1, d2), d3), b));
    }
}

/* g (3) -> G g (alpha) */
INLINE void g_1d(int m, const float *g, int64_t gs, float *r, int64_t rs)
{
    const vf g0 = vld(g), g1 = vld(g + gs), g2 = vld(g + 2 * gs), p = vadd(g0, g2);
    if (m == 4) {
        const vf q = vadd(vmul(1.0f / 24.0f, g0), vmul(1.0f / 6.0f, g2));
        const vf h = vmul(1.0f / 12.0f, g1);
        vst(r, vmul(0.25f, g0));
        vst(r + rs, vmul(-1.0f / 6.0f, vadd(p, g1)));
        vst(r + 2 * rs, vmul(-1.0f / 6.0f, vsub(p, g1)));
        vst(r + 3 * rs, vadd(q, h));
        vst(r + 4 * rs, vsub(q, h));
        vst(r + 5 * rs, g2);
    } else {
        vst(r, g0);
        vst(r + rs, vmul(0.5f, vadd(p, g1)));
        vst(r + 2 * rs, vmul(0.5f, vsub(p, g1)));
        vst(r + 3 * rs, g2);
    }
}

/* e (m) -> A e (alpha): the adjoint of at_1d (the output-gradient transform) */
INLINE void a_1d(int m, const float *d, int64_t ds, float *r, int64_t rs)
{
    if (m == 4) {
        const vf d0 = vld(d), d1 = vld(d + ds), d2 = vld(d + 2 * ds), d3 = vld(d + 3 * ds);
        const vf e = vadd(d0, d2), o = vadd(d1, d3);
        const vf e4 = vadd(d0, vmul(4.0f, d2)), o8 = vadd(vmul(2.0f, d1), vmul(8.0f, d3));
        vst(r, d0);
        vst(r + rs, vadd(e, o));
        vst(r + 2 * rs, vsub(e, o));
        vst(r + 3 * rs, vadd(e4, o8));
        vst(r + 4 * rs, vsub(e4, o8));
        vst(r + 5 * rs, d3);
    } else {
        const vf d0 = vld(d), d1 = vld(d + ds);
        vst(r, d0);
        vst(r + rs, vadd(d0, d1));
        vst(r + 2 * rs, vsub(d0, d1));
        vst(r + 3 * rs, vsub(vset(0.0f), d1));
    }
}

/* u (alpha) -> G^T u (3): the adjoint of g_1d (the filter-gradient transform) */
INLINE void gt_1d(int m, const float *d, int64_t ds, float *r, int64_t rs)
{
    if (m == 4) {
        const vf d0 = vld(d), d1 = vld(d + ds), d2 = vld(d + 2 * ds), d3 = vld(d + 3 * ds),
                 d4 = vld(d + 4 * ds), d5 = vld(d + 5 * ds);
        const vf s12 = vadd(d1, d2), s34 = vadd(d3, d4);
        vst(r, vadd(vsub(vmul(0.25f, d0), vmul(1.0f / 6.0f, s12)), vmul(1.0f / 24.0f, s34)));
        vst(r + rs, vadd(vmul(-1.0f / 6.0f, vsub(d1, d2)), vmul(1.0f / 12.0f, vsub(d3, d4))));
        vst(r + 2 * rs, vadd(vmul(1.0f / 6.0f, vsub(s34, s12)), d5));
    } else {
        const vf d0 = vld(d), d1 = vld(d + ds), d2 = vld(d + 2 * ds), d3 = vld(d + 3 * ds);
        const vf h = vmul(0.5f, vadd(d1, d2));
        vst(r, vadd(d0, h));
        vst(r + rs, vmul(0.5f, vsub(d1, d2)));
        vst(r + 2 * rs, vadd(h, d3));
    }
}

/* --- image rows <-> LANES-interleaved strips ------------------------------------------- */

/* inter[w*LANES + l] = src[l][w] for w < n (0 where src[l] is NULL) */
typedef void (*interleave_fn)(const float *const *src, float *inter, int64_t n);
/* dst[l][w] = inter[w*LANES + l] for w < n (lanes whose dst[l] is NULL are skipped) */
typedef void (*deinterleave_fn)(const float *inter, float *const *dst, int64_t n);

static void interleave_lanes(const float *const *src, float *inter, int l0, int l1,
                             int64_t w0, int64_t n)
{
    for (int l = l0; l < l1; ++l) {
        const float *s = src[l];
        if (s)
            for (int64_t w = w0; w < n; ++w) inter[w * LANES + l] = s[w];
        else
            for (int64_t w = w0; w < n; ++w) inter[w * LANES + l] = 0.0f;
    }
}

static void deinterleave_lanes(const float *inter, float *const *dst, int l0, int l1,
                               int64_t w0, int64_t n)
{
    for (int l = l0; l < l1; ++l) {
        float *d = dst[l];
        if (d)
            for (int64_t w = w0; w < n; ++w) d[w] = inter[w * LANES + l];
    }
}

static void interleave_any(const float *const *src, float *inter, int64_t n)
{
    interleave_lanes(src, inter, 0, LANES, 0, n);
}

static void deinterleave_any(const float *inter, float *const *dst, int64_t n)
{
    deinterleave_lanes(inter, dst, 0, LANES, 0, n);
}

#if defined(__GNUC__) && defined(__x86_64__) && LANES % 8 == 0
#include <immintrin.h>
#define HAVE_AVX2_PATH 1

/* in-register transpose of an 8x8 block: r[i][j] -> r[j][i] */
#define AVX2 __attribute__((target("avx2"), always_inline)) static inline
AVX2 void tr8x8(__m256 r[8])
{
    __m256 t[8], s[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        s[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        s[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        s[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        s[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 4; ++i) {
        r[i] = _mm256_permute2f128_ps(s[i], s[i + 4], 0x20);
        r[i + 4] = _mm256_permute2f128_ps(s[i], s[i + 4], 0x31);
    }
}

static int all8(const void *const *p)
{
    for (int i = 0; i < 8; ++i)
        if (!p[i]) return 0;
    return 1;
}

/* groups of 8 lanes whose pointers are all set go through 8x8 transposes */
__attribute__((target("avx2")))
static void interleave_avx2(const float *const *src, float *inter, int64_t n)
{
    for (int l0 = 0; l0 < LANES; l0 += 8) {
        int64_t w0 = 0;
        if (all8((const void *const *)(src + l0)))
            for (; w0 + 8 <= n; w0 += 8) {
                __m256 r[8];
                for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src[l0 + i] + w0);
                tr8x8(r);
                for (int j = 0; j < 8; ++j) _mm256_storeu_ps(inter + (w0 + j) * LANES + l0, r[j]);
            }
        if (w0 < n) interleave_lanes(src, inter, l0, l0 + 8, w0, n);
    }
}

__attribute__((target("avx2")))
static void deinterleave_avx2(const float *inter, float *const *dst, int64_t n)
{
    for (int l0 = 0; l0 < LANES; l0 += 8) {
        int64_t w0 = 0;
        if (all8((const void *const *)(dst + l0)))
            for (; w0 + 8 <= n; w0 += 8) {
                __m256 r[8];
                for (int j = 0; j < 8; ++j) r[j] = _mm256_loadu_ps(inter + (w0 + j) * LANES + l0);
                tr8x8(r);
                for (int i = 0; i < 8; ++i) _mm256_storeu_ps(dst[l0 + i] + w0, r[i]);
            }
        if (w0 < n) deinterleave_lanes(inter, dst, l0, l0 + 8, w0, n);
    }
}
#endif

static interleave_fn pick_interleave(void)
{
#ifdef HAVE_AVX2_PATH
    if (dtnn_isa_active() >= DTNN_ISA_AVX2) return interleave_avx2;
#endif
    return interleave_any;
}

static deinterleave_fn pick_deinterleave(void)
{
#ifdef HAVE_AVX2_PATH
    if (dtnn_isa_active() >= DTNN_ISA_AVX2) return deinterleave_avx2;
#endif
    return deinterleave_any;
}

/* --- per-thread scratch ------------------------------------------------------------------- */

/* one block of `per` floats (rounded to 64 bytes) per possible thread */
static float *scratch(size_t *per, int *nthreads)
{
    int nt = 1;
#ifdef _OPENMP
    nt = omp_get_max_threads();
#endif
    *nthreads = nt;
    *per = (*per + 15) & ~(size_t)15;
    return aligned_alloc(64, sizeof(float) * *per * (size_t)nt);
}

static int thread_id(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* --- filter transform ------------------------------------------------------------------ */

/* U[p][k][c0 .. c0+LANES) for all c0 of one k */
INLINE void filter_row(int m, const float *w, float *U, int64_t ups, int64_t C, int flip,
                       int64_t k, interleave_fn gather)
{
    const int a = m + 2;
    float g[9 * LANES], tmp[AMAX * 3 * LANES], o[AMAX * AMAX * LANES];
    const float *src[LANES];
    for (int64_t c0 = 0; c0 < C; c0 += LANES) {
        const int nl = (int)(C - c0 < LANES ? C - c0 : LANES);
        for (int l = 0; l < LANES; ++l) src[l] = l < nl ? w + (k * C + c0 + l) * 9 : NULL;
        gather(src, g, 9);                                /* g[s][l] = tap s of filter l */
        /* down the filter columns; the 180° rotation reads tap 8 - s for tap s */
        for (int s = 0; s < 3; ++s)
            g_1d(m, flip ? g + (8 - s) * LANES : g + s * LANES, flip ? -3 * LANES : 3 * LANES,
                 tmp + s * LANES, 3 * LANES);
        float *dst = U + k * C + c0;
        if (nl == LANES) {
            for (int u = 0; u < a; ++u)                   /* across: straight into U */
                g_1d(m, tmp + u * 3 * LANES, LANES, dst + u * a * ups, ups);
        } else {
            for (int u = 0; u < a; ++u)
                g_1d(m, tmp + u * 3 * LANES, LANES, o + u * a * LANES, LANES);
            for (int p = 0; p < a * a; ++p)
                memcpy(dst + p * ups, o + p * LANES, sizeof(float) * nl);
        }
    }
}

DTNN_CLONES
static void filter_f4(const float *w, float *U, int64_t ups, int64_t C, int flip, int64_t k,
                      interleave_fn gather)
{
    filter_row(4, w, U, ups, C, flip, k, gather);
}

DTNN_CLONES
static void filter_f2(const float *w, float *U, int64_t ups, int64_t C, int flip, int64_t k,
                      interleave_fn gather)
{
    filter_row(2, w, U, ups, C, flip, k, gather);
}

void dtnn_wino_filter_f32(const float *w, float *U, int64_t ups, int64_t K, int64_t C,
                          int64_t m, int flip)
{
    const interleave_fn gather = pick_interleave();
#pragma omp parallel for schedule(static) if (K * C * (m + 2) * (m + 2) > OMP_MIN_WORK)
    for (int64_t k = 0; k < K; ++k) {
        if (m == 4)
            filter_f4(w, U, ups, C, flip, k, gather);
        else
            filter_f2(w, U, ups, C, flip, k, gather);
    }
}

/* --- filter-gradient transform (backward-weights) --------------------------------------- */

/* dw[k][c0 .. c0+LANES) (+)= G^T dU[.][k][c] G for all c0 of one k */
INLINE void dfilter_row(int m, const float *dU, int64_t ups, float *dw, int64_t C,
                        int accumulate, int64_t k, interleave_fn gather,
                        deinterleave_fn scatter)
{
    const int a = m + 2;
    float o[AMAX * AMAX * LANES], tmp[3 * AMAX * LANES], g[9 * LANES], e[9 * LANES];
    const float *src[LANES];
    float *dst[LANES];
    for (int64_t c0 = 0; c0 < C; c0 += LANES) {
        const int nl = (int)(C - c0 < LANES ? C - c0 : LANES);
        const float *s = dU + k * C + c0;
        int64_t ps = ups;
        if (nl < LANES) {                                 /* partial vector: via o */
            memset(o, 0, sizeof(float) * a * a * LANES);
            for (int p = 0; p < a * a; ++p)
                memcpy(o + p * LANES, s + p * ups, sizeof(float) * nl);
            s = o;
            ps = LANES;
        }
        /* G^T down each column v (over u), then across each row r (over v) */
        for (int v = 0; v < a; ++v)
            gt_1d(m, s + v * ps, a * ps, tmp + v * LANES, a * LANES);
        for (int r = 0; r < 3; ++r)
            gt_1d(m, tmp + r * a * LANES, LANES, g + r * 3 * LANES, LANES);
        for (int l = 0; l < LANES; ++l) dst[l] = l < nl ? dw + (k * C + c0 + l) * 9 : NULL;
        if (accumulate) {                                 /* + the 9 taps already there */
            for (int l = 0; l < LANES; ++l) src[l] = dst[l];
            gather(src, e, 9);
            for (int t = 0; t < 9; ++t)
                vst(g + t * LANES, vadd(vld(g + t * LANES), vld(e + t * LANES)));
        }
        scatter(g, dst, 9);
    }
}

DTNN_CLONES
static void dfilter_f4(const float *dU, int64_t ups, float *dw, int64_t C, int acc,
                       int64_t k, interleave_fn gather, deinterleave_fn scatter)
{
    dfilter_row(4, dU, ups, dw, C, acc, k, gather, scatter);
}

DTNN_CLONES
static void dfilter_f2(const float *dU, int64_t ups, float *dw, int64_t C, int acc,
                       int64_t k, interleave_fn gather, deinterleave_fn scatter)
{
    dfilter_row(2, dU, ups, dw, C, acc, k, gather, scatter);
}

void dtnn_wino_dfilter_f32(const float *dU, int64_t ups, float *dw, int64_t K, int64_t C,
                           int64_t m, int accumulate)
{
    const interleave_fn gather = pick_interleave();
    const deinterleave_fn scatter = pick_deinterleave();
#pragma omp parallel for schedule(static) if (K * C * (m + 2) * (m + 2) > OMP_MIN_WORK)
    for (int64_t k = 0; k < K; ++k) {
        if (m == 4)
            dfilter_f4(dU, ups, dw, C, accumulate, k, gather, scatter);
        else
            dfilter_f2(dU, ups, dw, C, accumulate, k, gather, scatter);
    }
}

/* --- job layout shared by the input and output transforms ------------------------------- */

/* A job is one channel and a group of up to `bpj` consecutive blocks of LANES strips.
 * Within a job the tiles are visited tile column j outer, block inner, so each
 * position slice of V (or M) is written (read) as one sequential run per j, which the
 * hardware prefetchers follow; per-block intermediates wait in scratch meanwhile. */
typedef struct {
    int64_t nblk, bpj, groups, jobs;
} job_plan;

static job_plan plan_jobs(int64_t channels, int64_t Q, size_t floats_per_block)
{
    job_plan jp;
    int nt = 1;
#ifdef _OPENMP
    nt = omp_get_max_threads();
#endif
    jp.nblk = (Q + LANES - 1) / LANES;
    jp.bpj = (int64_t)(49152 / (floats_per_block ? floats_per_block : 1));  /* ~192 KiB */
    if (jp.bpj < 1) jp.bpj = 1;
    if (jp.bpj > jp.nblk) jp.bpj = jp.nblk;
    /* at least ~4 jobs per thread when the channels alone do not provide them */
    const int64_t want = (4 * (int64_t)nt + channels - 1) / channels;
    if (nt > 1 && want > 1) {
        const int64_t cap = (jp.nblk + want - 1) / want;
        if (cap < jp.bpj) jp.bpj = cap > 0 ? cap : 1;
    }
    jp.groups = (jp.nblk + jp.bpj - 1) / jp.bpj;
    jp.jobs = channels * jp.groups;
    return jp;
}

/* lane l of block q0 is strip q0 + l = (i, n): hrow[l] = i*m (or `never` past nl),
 * img[l] = n; counting is cheaper than a division per lane */
static void lane_strips(int64_t q0, int nl, int64_t nb, int64_t m, int64_t never,
                        int64_t hrow[LANES], int64_t img[LANES])
{
    int64_t i = q0 / nb, n = q0 - i * nb;
    for (int l = 0; l < LANES; ++l) {
        hrow[l] = l < nl ? i * m : never;
        img[l] = l < nl ? n : 0;
        if (++n == nb) n = 0, ++i;
    }
}

/* --- input transform --------------------------------------------------------------------- */

typedef struct {
    int64_t nb, C, H, W, pad_h, pad_w, th, tw, T, Wp, ps, Q;
    interleave_fn gather;
} in_geom;

/* the 1-D transform of a strip job: B^T (input) or A (dy) */
INLINE void strip_1d(int dy, int m, const float *d, int64_t ds, float *r, int64_t rs)
{
    if (dy)
        a_1d(m, d, ds, r, rs);
    else
        bt_1d(m, d, ds, r, rs);
}

/* blocks b0 .. b1 of channel c (xc = x + c*H*W); scratch rows (a x Wp x LANES),
 * R ((b1-b0) x a x Wp x LANES), o (a*a x LANES).  dy: the output-gradient job
 * (dtnn_wino_dy_f32; x is dy, V is D, no padding): m rows per strip, A where the input
 * job runs B^T and B.  Always inlined with constant m and dy. */
INLINE void strip_job(int m, int dy, const in_geom *gm, const float *xc, float *V, int64_t c,
                      int64_t b0, int64_t b1, float *rows, float *R, float *o)
{
    const int a = m + 2;
    const int64_t Wp = gm->Wp, W = gm->W, H = gm->H, PS = gm->ps, Q = gm->Q;
    const int64_t CHW = gm->C * H * W, strip = Wp * LANES, pw = gm->pad_w, wend = pw + W;
    const float *src[LANES], *top[LANES];
    int64_t hrow[LANES], img[LANES];
    for (int64_t b = b0; b < b1; ++b) {
        const int64_t q0 = b * LANES;
        const int nl = (int)(Q - q0 < LANES ? Q - q0 : LANES);
        lane_strips(q0, nl, gm->nb, m, -(int64_t)AMAX - H, hrow, img);
        /* one tile row for all lanes (nb a multiple of LANES): one bounds test per row */
        const int same = nl == LANES && hrow[0] == hrow[LANES - 1];
        if (same)
            for (int l = 0; l < LANES; ++l) top[l] = xc + img[l] * CHW;
        /* gather: row u of lane l is image row hrow[l] + u - pad_h, zero outside */
        for (int u = 0; u < (dy ? m : a); ++u) {
            float *row = rows + u * strip;
            int any = 0;
            if (same) {
                const int64_t h = hrow[0] + u - gm->pad_h;
                any = h >= 0 && h < H;
                if (any)
                    for (int l = 0; l < LANES; ++l) src[l] = top[l] + h * W;
            } else {
                for (int l = 0; l < LANES; ++l) {
                    const int64_t h = hrow[l] + u - gm->pad_h;
                    const int inside = h >= 0 && h < H;
                    src[l] = inside ? xc + img[l] * CHW + h * W : NULL;
                    any |= inside;
                }
            }
            if (!any) {
                memset(row, 0, sizeof(float) * strip);
                continue;
            }
            if (pw > 0) memset(row, 0, sizeof(float) * pw * LANES);
            if (wend < Wp) memset(row + wend * LANES, 0, sizeof(float) * (Wp - wend) * LANES);
            gm->gather(src, row + pw * LANES, W);
        }
        /* B^T (dy: A) down every column of the strips */
        float *Rb = R + (b - b0) * a * strip;
        for (int64_t w = 0; w < Wp; ++w)
            strip_1d(dy, m, rows + w * LANES, strip, Rb + w * LANES, strip);
    }
    /* B (dy: A) across each tile, into V[p][c][j*Q + q ...] */
    for (int64_t j = 0; j < gm->tw; ++j)
        for (int64_t b = b0; b < b1; ++b) {
            const int64_t q0 = b * LANES;
            const int nl = (int)(Q - q0 < LANES ? Q - q0 : LANES);
            float *dst = V + c * gm->T + j * Q + q0;
            const float *s = R + (b - b0) * a * strip + j * m * LANES;
            if (nl == LANES) {
                for (int u = 0; u < a; ++u)
                    strip_1d(dy, m, s + u * strip, LANES, dst + u * a * PS, PS);
            } else {
                for (int u = 0; u < a; ++u)
                    strip_1d(dy, m, s + u * strip, LANES, o + u * a * LANES, LANES);
                for (int p = 0; p < a * a; ++p)
                    memcpy(dst + p * PS, o + p * LANES, sizeof(float) * nl);
            }
        }
}

DTNN_CLONES
static void input_f4(const in_geom *gm, const float *xc, float *V, int64_t c, int64_t b0,
                     int64_t b1, float *rows, float *R, float *o)
{
    strip_job(4, 0, gm, xc, V, c, b0, b1, rows, R, o);
}

DTNN_CLONES
static void input_f2(const in_geom *gm, const float *xc, float *V, int64_t c, int64_t b0,
                     int64_t b1, float *rows, float *R, float *o)
{
    strip_job(2, 0, gm, xc, V, c, b0, b1, rows, R, o);
}

int dtnn_wino_input_f32(const float *x, float *V, int64_t vps, int64_t nb, int64_t C,
                        int64_t H, int64_t W, int64_t pad_h, int64_t pad_w, int64_t m,
                        int64_t th, int64_t tw)
{
    const int a = (int)m + 2;
    const int64_t Wp = (tw - 1) * m + a;
    in_geom gm = {nb, C, H, W, pad_h, pad_w, th, tw, nb * th * tw, Wp, vps, th * nb,
                  pick_interleave()};
    const size_t strip = (size_t)Wp * LANES;
    const job_plan jp = plan_jobs(C, gm.Q, a * strip);
    size_t per = (1 + (size_t)jp.bpj) * a * strip + AMAX * AMAX * LANES;
    int nt;
    float *buf = scratch(&per, &nt);
    if (!buf) return -1;
#pragma omp parallel for schedule(static) num_threads(nt) \
    if (jp.jobs * LANES * jp.bpj * tw * a * a > OMP_MIN_WORK)
    for (int64_t job = 0; job < jp.jobs; ++job) {
        float *s = buf + per * (size_t)thread_id();
        const int64_t c = job / jp.groups, b0 = (job % jp.groups) * jp.bpj;
        const int64_t b1 = b0 + jp.bpj < jp.nblk ? b0 + jp.bpj : jp.nblk;
        float *R = s + a * strip, *o = R + jp.bpj * a * strip;
        if (m == 4)
            input_f4(&gm, x + c * H * W, V, c, b0, b1, s, R, o);
        else
            input_f2(&gm, x + c * H * W, V, c, b0, b1, s, R, o);
    }
    free(buf);
    return 0;
}

/* --- output-gradient transform (backward-weights) --------------------------------------- */

/* strip_job with dy set: the strips, jobs and D layout of the input transform (D (alpha²,
 * K, T) like V) on dy's m x m tiles, which do not overlap (zero past Ho / Wo), so the
 * GEMM is dU[p] = D[p] @ V[p]^T.  (Lanes over 16 channels writing D as (alpha², T, K)
 * made that GEMM an NN product, 10-15% faster on 64..128 channels, but the transform
 * then writes scattered 64-byte pieces and ran 1.5-3x slower: no net gain, measured.) */
DTNN_CLONES
static void dy_f4(const in_geom *gm, const float *dyk, float *D, int64_t k, int64_t b0,
                  int64_t b1, float *rows, float *R, float *o)
{
    strip_job(4, 1, gm, dyk, D, k, b0, b1, rows, R, o);
}

DTNN_CLONES
static void dy_f2(const in_geom *gm, const float *dyk, float *D, int64_t k, int64_t b0,
                  int64_t b1, float *rows, float *R, float *o)
{
    strip_job(2, 1, gm, dyk, D, k, b0, b1, rows, R, o);
}

int dtnn_wino_dy_f32(const float *dy, float *D, int64_t dps, int64_t nb, int64_t K,
                     int64_t Ho, int64_t Wo, int64_t m, int64_t th, int64_t tw)
{
    const int a = (int)m + 2;
    const int64_t Wq = tw * m;
    /* strip_job's geometry with no padding */
    in_geom gm = {nb, K, Ho, Wo, 0, 0, th, tw, nb * th * tw, Wq, dps, th * nb,
                  pick_interleave()};
    const size_t strip = (size_t)Wq * LANES;
    const job_plan jp = plan_jobs(K, gm.Q, a * strip);
    size_t per = (m + (size_t)jp.bpj * a) * strip + AMAX * AMAX * LANES;
    int nt;
    float *buf = scratch(&per, &nt);
    if (!buf) return -1;
#pragma omp parallel for schedule(static) num_threads(nt) \
    if (jp.jobs * LANES * jp.bpj * tw * a * a > OMP_MIN_WORK)
    for (int64_t job = 0; job < jp.jobs; ++job) {
        float *s = buf + per * (size_t)thread_id();
        const int64_t k = job / jp.groups, b0 = (job % jp.groups) * jp.bpj;
        const int64_t b1 = b0 + jp.bpj < jp.nblk ? b0 + jp.bpj : jp.nblk;
        float *R = s + m * strip, *o = R + jp.bpj * a * strip;
        if (m == 4)
            dy_f4(&gm, dy + k * Ho * Wo, D, k, b0, b1, s, R, o);
        else
            dy_f2(&gm, dy + k * Ho * Wo, D, k, b0, b1, s, R, o);
    }
    free(buf);
    return 0;
}

/* --- output transform -------------------------------------------------------------------- */

typedef struct {
    int64_t nb, K, Ho, Wo, th, tw, T, ps, Q;
    deinterleave_fn scatter;
} out_geom;

/* blocks b0 .. b1 of output channel k (yk = y + k*Ho*Wo); scratch d (a*a x LANES),
 * tmp (a x a x LANES), ob ((b1-b0) x m x tw*m x LANES) */
INLINE void output_job(int m, const out_geom *gm, const float *M, float *yk, float bias,
                       int64_t k, int64_t b0, int64_t b1, float *d, float *tmp, float *ob)
{
    const int a = m + 2;
    const int64_t PS = gm->ps, Ho = gm->Ho, Wo = gm->Wo, tw = gm->tw, Q = gm->Q;
    const int64_t KHW = gm->K * Ho * Wo, ostrip = tw * m * LANES;
    const vf zero = vset(0.0f), vb = vset(bias);
    for (int64_t j = 0; j < tw; ++j)
        for (int64_t b = b0; b < b1; ++b) {
            const int64_t q0 = b * LANES;
            const int nl = (int)(Q - q0 < LANES ? Q - q0 : LANES);
            const float *src = M + k * gm->T + j * Q + q0;
            int64_t ps = PS;                          /* distance between positions p */
            if (nl < LANES) {
                memset(d, 0, sizeof(float) * a * a * LANES);
                for (int p = 0; p < a * a; ++p)
                    memcpy(d + p * LANES, src + p * PS, sizeof(float) * nl);
                src = d;
                ps = LANES;
            }
            /* A^T down the tile's columns, then A across, into the block's strip */
            float *obb = ob + (b - b0) * m * ostrip + j * m * LANES;
            for (int v = 0; v < a; ++v)
                at_1d(m, src + v * ps, a * ps, tmp + v * LANES, a * LANES, zero);
            for (int u = 0; u < m; ++u)
                at_1d(m, tmp + u * a * LANES, LANES, obb + u * ostrip, LANES, vb);
        }
    /* row u of lane l is output row hrow[l] + u of its image, if inside it */
    float *dst[LANES];
    int64_t hrow[LANES], img[LANES];
    for (int64_t b = b0; b < b1; ++b) {
        const int64_t q0 = b * LANES;
        const int nl = (int)(Q - q0 < LANES ? Q - q0 : LANES);
        lane_strips(q0, nl, gm->nb, m, Ho, hrow, img);
        const float *obb = ob + (b - b0) * m * ostrip;
        const int same = nl == LANES && hrow[0] == hrow[LANES - 1];
        for (int u = 0; u < m; ++u) {
            if (same) {
                const int64_t h = hrow[0] + u;
                if (h >= Ho) break;
                for (int l = 0; l < LANES; ++l) dst[l] = yk + img[l] * KHW + h * Wo;
            } else {
                for (int l = 0; l < LANES; ++l)
                    dst[l] = hrow[l] + u < Ho ? yk + img[l] * KHW + (hrow[l] + u) * Wo : NULL;
            }
            gm->scatter(obb + u * ostrip, dst, Wo);
        }
    }
}

DTNN_CLONES
static void output_f4(const out_geom *gm, const float *M, float *yk, float bias, int64_t k,
                      int64_t b0, int64_t b1, float *d, float *tmp, float *ob)
{
    output_job(4, gm, M, yk, bias, k, b0, b1, d, tmp, ob);
}

DTNN_CLONES
static void output_f2(const out_geom *gm, const float *M, float *yk, float bias, int64_t k,
                      int64_t b0, int64_t b1, float *d, float *tmp, float *ob)
{
    output_job(2, gm, M, yk, bias, k, b0, b1, d, tmp, ob);
}

int dtnn_wino_output_f32(const float *M, int64_t mps, float *y, const float *bias,
                         int64_t nb, int64_t K, int64_t Ho, int64_t Wo, int64_t m,
                         int64_t th, int64_t tw)
{
    const int a = (int)m + 2;
    out_geom gm = {nb, K, Ho, Wo, th, tw, nb * th * tw, mps, th * nb, pick_deinterleave()};
    const size_t blk = AMAX * AMAX * LANES, ob_per_block = (size_t)tw * m * m * LANES;
    const job_plan jp = plan_jobs(K, gm.Q, ob_per_block);
    size_t per = 2 * blk + jp.bpj * ob_per_block;
    int nt;
    float *buf = scratch(&per, &nt);
    if (!buf) return -1;
#pragma omp parallel for schedule(static) num_threads(nt) \
    if (jp.jobs * LANES * jp.bpj * tw * a * a > OMP_MIN_WORK)
    for (int64_t job = 0; job < jp.jobs; ++job) {
        float *d = buf + per * (size_t)thread_id();
        const int64_t k = job / jp.groups, b0 = (job % jp.groups) * jp.bpj;
        const int64_t b1 = b0 + jp.bpj < jp.nblk ? b0 + jp.bpj : jp.nblk;
        const float b = bias ? bias[k] : 0.0f;
        float *yk = y + k * Ho * Wo;
        if (m == 4)
            output_f4(&gm, M, yk, b, k, b0, b1, d, d + blk, d + 2 * blk);
        else
            output_f2(&gm, M, yk, b, k, b0, b1, d, d + blk, d + 2 * blk);
    }
    free(buf);
    return 0;
}
