/*
 * Gradient-compression kernels (see compress.h for the contract and
 * dtnn/compress/twins.py for the numpy twins they are tested against).
 *
 * Loops are written as flat, branch-free element loops (selects instead of ifs,
 * fixed-width lane accumulators for reductions) so that GCC/Clang vectorise them at
 * -O3 without -ffast-math.  Floating-point contraction is switched off so that the
 * float32 arithmetic matches the numpy twins bit for bit even with -march=native.
 */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("fp-contract=off")
#endif
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compress.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(_MSC_VER)
#define RESTRICT __restrict
#else
#define RESTRICT restrict
#endif

#define LANES 8

int dtnn_cx_openmp_enabled(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int dtnn_cx_openmp_max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static inline uint32_t f2u(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float u2f(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* ---------------------------------------------------------------- dispatch
 * Every streaming kernel is a *range body* (an always-inline function over
 * [s, e)) compiled twice: for the baseline ISA and, on x86 with GCC/Clang, with
 * AVX2 (+F16C for the half conversions), picked once at run time.  The wheel keeps
 * running on any x86-64, and the vectoriser gets 256-bit registers, 32-bit integer
 * multiplies (the RNG) and roundings where the CPU has them. */
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define CX_X86 1
#include <immintrin.h>
#define CX_AVX2 __attribute__((target("avx2,f16c")))
static int cx_has_avx2(void)
{
    static int v = -1;
    if (v < 0) {
        __builtin_cpu_init();
        v = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
    }
    return v;
}
#else
#define CX_X86 0
static int cx_has_avx2(void) { return 0; }
#endif

#if defined(__GNUC__) || defined(__clang__)
#define CX_INLINE static inline __attribute__((always_inline))
#else
#define CX_INLINE static inline
#endif

#if CX_X86
#define CX_CLONES(name, params, args)                                    \
    static void name##_gen params { name##_body args; }                  \
    CX_AVX2 static void name##_avx2 params { name##_body args; }         \
    static void name##_run params                                        \
    {                                                                    \
        if (cx_has_avx2())                                               \
            name##_avx2 args;                                            \
        else                                                             \
            name##_gen args;                                             \
    }
#else
#define CX_CLONES(name, params, args)                                    \
    static void name##_run params { name##_body args; }
#endif

/* run body(s, e) over [0, n) in blocks, in parallel if large */
#define CX_BLOCKS(n, CALL)                                                           \
    do {                                                                             \
        const int64_t nb_ = ((n) + DTNN_CX_BLOCK - 1) / DTNN_CX_BLOCK;               \
        int64_t b_;                                                                  \
        (void)cx_has_avx2();                                                         \
        _Pragma("omp parallel for schedule(static) if ((n) >= DTNN_CX_MIN_WORK)")    \
        for (b_ = 0; b_ < nb_; ++b_) {                                               \
            const int64_t s = b_ * DTNN_CX_BLOCK;                                    \
            const int64_t e = (s + DTNN_CX_BLOCK < (n)) ? s + DTNN_CX_BLOCK : (n);   \
            CALL;                                                                    \
        }                                                                            \
    } while (0)

/* ---------------------------------------------------------------- RNG */
static inline uint32_t mix32(uint32_t h)
{
    h ^= h >> 16;
    h *= 0x7feb352dU;
    h ^= h >> 15;
    h *= 0x846ca68bU;
    h ^= h >> 16;
    return h;
}

static inline float uniform_at(int64_t i, uint32_t k0, uint32_t k1)
{
    const uint32_t h = mix32(mix32((uint32_t)i ^ k0) + k1);
    return (float)(int32_t)(h >> 8) * (1.0f / 16777216.0f);
}

CX_INLINE void uni_body(float *RESTRICT out, int64_t s, int64_t e, uint32_t k0, uint32_t k1)
{
    int64_t i;
    for (i = s; i < e; ++i)
        out[i] = uniform_at(i, k0, k1);
}
CX_CLONES(uni, (float *RESTRICT out, int64_t s, int64_t e, uint32_t k0, uint32_t k1),
          (out, s, e, k0, k1))

void dtnn_cx_uniform(float *RESTRICT out, int64_t n, uint64_t key)
{
    const uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    CX_BLOCKS(n, uni_run(out, s, e, k0, k1));
}

/* ---------------------------------------------------------------- fp16 / bf16 */
static inline uint16_t f32_to_f16_bits(float v)
{
    const uint32_t f = f2u(v);
    const uint32_t sign = (f >> 16) & 0x8000u;
    const uint32_t a = f & 0x7fffffffu;
    /* below 2^-14: let the FPU round into the subnormal grid (ulp 2^-24) by adding 0.5 */
    const uint32_t sub = f2u(u2f(a) + 0.5f) - 0x3f000000u;
    /* normal: rebias the exponent (-112 << 23) and round the 13 dropped bits to even */
    const uint32_t nrm = (a + 0xc8000fffu + ((a >> 13) & 1u)) >> 13;
    uint32_t r = a < 0x38800000u ? sub : nrm;
    r = a >= 0x477ff000u ? 0x7c00u : r;  /* rounds to >= 65520: infinity */
    r = a > 0x7f800000u ? 0x7e00u : r;   /* NaN */
    return (uint16_t)(r | sign);
}

static inline float f16_bits_to_f32(uint16_t h)
{
    const uint32_t sign = ((uint32_t)h & 0x8000u) << 16;
    const uint32_t em = (uint32_t)h & 0x7fffu;
    const uint32_t e = em & 0x7c00u;
    uint32_t u = (em << 13) + 0x38000000u;
    u = e == 0x7c00u ? u + 0x38000000u : u;                    /* inf / NaN */
    const float sub = u2f((em << 13) + 0x38800000u) - 6.103515625e-05f;  /* m * 2^-24 */
    const float mag = e == 0 ? sub : u2f(u);
    return u2f(f2u(mag) | sign);
}

static void f2h_gen(const float *RESTRICT x, uint16_t *RESTRICT h, int64_t s, int64_t e,
                    float scale)
{
    int64_t i;
    for (i = s; i < e; ++i)
        h[i] = f32_to_f16_bits(x[i] * scale);
}

static void h2f_gen(const uint16_t *RESTRICT h, float *RESTRICT out, int64_t s, int64_t e,
                    float alpha, int acc)
{
    int64_t i;
    if (acc)
        for (i = s; i < e; ++i)
            out[i] += f16_bits_to_f32(h[i]) * alpha;
    else
        for (i = s; i < e; ++i)
            out[i] = f16_bits_to_f32(h[i]) * alpha;
}

#if CX_X86
/* F16C: vcvtps2ph rounds to nearest even like the portable code; NaN -> quiet NaN */
CX_AVX2 static void f2h_avx2(const float *RESTRICT x, uint16_t *RESTRICT h, int64_t s,
                             int64_t e, float scale)
{
    const __m256 sc = _mm256_set1_ps(scale);
    int64_t i = s;
    for (; i + 8 <= e; i += 8) {
        const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), sc);
        const __m256 a = _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff)));
        const __m256 isnan = _mm256_cmp_ps(a, a, _CMP_UNORD_Q);
        __m128i r = _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        /* canonical NaN 0x7e00 | sign, as the portable path */
        const __m128i nanbits = _mm_or_si128(
            _mm_set1_epi16(0x7e00), _mm_and_si128(r, _mm_set1_epi16((short)0x8000)));
        const __m128i m = _mm_packs_epi32(_mm256_castsi256_si128(_mm256_castps_si256(isnan)),
                                          _mm256_extracti128_si256(_mm256_castps_si256(isnan), 1));
        r = _mm_or_si128(_mm_and_si128(m, nanbits), _mm_andnot_si128(m, r));
        _mm_storeu_si128((__m128i *)(h + i), r);
    }
    f2h_gen(x, h, i, e, scale);
}

CX_AVX2 static void h2f_avx2(const uint16_t *RESTRICT h, float *RESTRICT out, int64_t s,
                             int64_t e, float alpha, int acc)
{
    const __m256 al = _mm256_set1_ps(alpha);
    int64_t i = s;
    if (acc)
        for (; i + 8 <= e; i += 8) {
            const __m256 v = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i)));
            _mm256_storeu_ps(out + i, _mm256_add_ps(_mm256_loadu_ps(out + i),
                                                    _mm256_mul_ps(v, al)));
        }
    else
        for (; i + 8 <= e; i += 8) {
            const __m256 v = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i)));
            _mm256_storeu_ps(out + i, _mm256_mul_ps(v, al));
        }
    h2f_gen(h, out, i, e, alpha, acc);
}
#endif

void dtnn_cx_f32_to_f16(const float *RESTRICT x, uint16_t *RESTRICT h, int64_t n, float scale)
{
#if CX_X86
    if (cx_has_avx2()) {
        CX_BLOCKS(n, f2h_avx2(x, h, s, e, scale));
        return;
    }
#endif
    CX_BLOCKS(n, f2h_gen(x, h, s, e, scale));
}

void dtnn_cx_f16_to_f32(const uint16_t *RESTRICT h, float *RESTRICT out, int64_t n,
                        float alpha, int accumulate)
{
#if CX_X86
    if (cx_has_avx2()) {
        CX_BLOCKS(n, h2f_avx2(h, out, s, e, alpha, accumulate));
        return;
    }
#endif
    CX_BLOCKS(n, h2f_gen(h, out, s, e, alpha, accumulate));
}

static inline uint16_t f32_to_bf16_bits(float v)
{
    const uint32_t u = f2u(v);
    const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    const uint32_t nan = (u >> 16) | 0x40u;
    return (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
}

CX_INLINE void f2bf_body(const float *RESTRICT x, uint16_t *RESTRICT h, int64_t s, int64_t e,
                         float scale)
{
    int64_t i;
    for (i = s; i < e; ++i)
        h[i] = f32_to_bf16_bits(x[i] * scale);
}
CX_CLONES(f2bf, (const float *RESTRICT x, uint16_t *RESTRICT h, int64_t s, int64_t e,
                 float scale), (x, h, s, e, scale))

CX_INLINE void bf2f_body(const uint16_t *RESTRICT h, float *RESTRICT out, int64_t s,
                         int64_t e, float alpha, int acc)
{
    int64_t i;
    if (acc)
        for (i = s; i < e; ++i)
            out[i] += u2f((uint32_t)h[i] << 16) * alpha;
    else
        for (i = s; i < e; ++i)
            out[i] = u2f((uint32_t)h[i] << 16) * alpha;
}
CX_CLONES(bf2f, (const uint16_t *RESTRICT h, float *RESTRICT out, int64_t s, int64_t e,
                 float alpha, int acc), (h, out, s, e, alpha, acc))

void dtnn_cx_f32_to_bf16(const float *RESTRICT x, uint16_t *RESTRICT h, int64_t n, float scale)
{
    CX_BLOCKS(n, f2bf_run(x, h, s, e, scale));
}

void dtnn_cx_bf16_to_f32(const uint16_t *RESTRICT h, float *RESTRICT out, int64_t n,
                         float alpha, int accumulate)
{
    CX_BLOCKS(n, bf2f_run(h, out, s, e, alpha, accumulate));
}

/* ---------------------------------------------------------------- reductions */
static double block_sum_sq(const float *RESTRICT p, int64_t m)
{
    double acc[LANES] = {0};
    int64_t i = 0, l;
    for (; i + LANES <= m; i += LANES)
        for (l = 0; l < LANES; ++l)
            acc[l] += (double)p[i + l] * (double)p[i + l];
    for (; i < m; ++i)
        acc[0] += (double)p[i] * (double)p[i];
    double s = 0.0;
    for (l = 0; l < LANES; ++l)
        s += acc[l];
    return s;
}

static double block_sum_abs(const float *RESTRICT p, int64_t m)
{
    double acc[LANES] = {0};
    int64_t i = 0, l;
    for (; i + LANES <= m; i += LANES)
        for (l = 0; l < LANES; ++l)
            acc[l] += (double)fabsf(p[i + l]);
    for (; i < m; ++i)
        acc[0] += (double)fabsf(p[i]);
    double s = 0.0;
    for (l = 0; l < LANES; ++l)
        s += acc[l];
    return s;
}

static uint32_t block_max_abs_bits(const float *RESTRICT p, int64_t m)
{
    uint32_t acc[LANES] = {0};
    int64_t i = 0, l;
    for (; i + LANES <= m; i += LANES)
        for (l = 0; l < LANES; ++l) {
            const uint32_t a = f2u(p[i + l]) & 0x7fffffffu;
            acc[l] = a > acc[l] ? a : acc[l];
        }
    for (; i < m; ++i) {
        const uint32_t a = f2u(p[i]) & 0x7fffffffu;
        acc[0] = a > acc[0] ? a : acc[0];
    }
    uint32_t r = 0;
    for (l = 0; l < LANES; ++l)
        r = acc[l] > r ? acc[l] : r;
    return r;
}

/* kind 0: sum of squares, 1: max |x| (as bits, exact), 2: sum |x|; blocked so the
 * result does not depend on the thread count */
static double reduce_range(const float *p, int64_t m, int kind)
{
    const int64_t nb = (m + DTNN_CX_BLOCK - 1) / DTNN_CX_BLOCK;
    if (nb <= 1) {
        if (kind == 1)
            return (double)u2f(block_max_abs_bits(p, m));
        return kind == 0 ? block_sum_sq(p, m) : block_sum_abs(p, m);
    }
    double *part = (double *)malloc((size_t)nb * sizeof(double));
    if (part == NULL)
        return NAN;
    int64_t b;
#pragma omp parallel for schedule(static) if (m >= DTNN_CX_MIN_WORK)
    for (b = 0; b < nb; ++b) {
        const int64_t s = b * DTNN_CX_BLOCK;
        const int64_t len = (s + DTNN_CX_BLOCK <= m) ? DTNN_CX_BLOCK : m - s;
        if (kind == 1)
            part[b] = (double)u2f(block_max_abs_bits(p + s, len));
        else
            part[b] = kind == 0 ? block_sum_sq(p + s, len) : block_sum_abs(p + s, len);
    }
    double r = 0.0;
    for (b = 0; b < nb; ++b)
        r = kind == 1 ? (part[b] > r ? part[b] : r) : r + part[b];
    free(part);
    return r;
}

void dtnn_cx_chunk_norms(const float *RESTRICT x, int64_t n, int64_t chunk, int kind,
                         float *RESTRICT out)
{
    const int64_t nc = (n + chunk - 1) / chunk;
    int64_t c;
    if (chunk <= DTNN_CX_BLOCK) {
#pragma omp parallel for schedule(static) if (n >= DTNN_CX_MIN_WORK)
        for (c = 0; c < nc; ++c) {
            const int64_t s = c * chunk;
            const int64_t len = (s + chunk <= n) ? chunk : n - s;
            double r;
            if (kind == 1)
                r = (double)u2f(block_max_abs_bits(x + s, len));
            else
                r = kind == 0 ? block_sum_sq(x + s, len) : block_sum_abs(x + s, len);
            out[c] = (float)(kind == 0 ? sqrt(r) : r);
        }
        return;
    }
    for (c = 0; c < nc; ++c) {
        const int64_t s = c * chunk;
        const int64_t len = (s + chunk <= n) ? chunk : n - s;
        const double r = reduce_range(x + s, len, kind);
        out[c] = (float)(kind == 0 ? sqrt(r) : r);
    }
}

/* ---------------------------------------------------------------- int8 / QSGD */
/* |x| * inv + r >= 0, clamped to levels before the truncation: (int) == floor */
CX_INLINE void q8_body(const float *RESTRICT x, int8_t *RESTRICT q, int64_t s, int64_t e,
                       float inv, float levels, uint32_t k0, uint32_t k1, int stochastic)
{
    int64_t i;
    if (stochastic) {
        for (i = s; i < e; ++i) {
            float t = fabsf(x[i]) * inv + uniform_at(i, k0, k1);
            t = t < levels ? t : levels;
            const int32_t l = (int32_t)t;
            q[i] = (int8_t)(x[i] < 0.0f ? -l : l);
        }
    } else {
        for (i = s; i < e; ++i) {
            float t = fabsf(x[i]) * inv + 0.5f;
            t = t < levels ? t : levels;
            const int32_t l = (int32_t)t;
            q[i] = (int8_t)(x[i] < 0.0f ? -l : l);
        }
    }
}
CX_CLONES(q8, (const float *RESTRICT x, int8_t *RESTRICT q, int64_t s, int64_t e, float inv,
               float levels, uint32_t k0, uint32_t k1, int stochastic),
          (x, q, s, e, inv, levels, k0, k1, stochastic))

/* split [s, e) at chunk boundaries and run BODY on [cs, ce) of chunk ck */
#define CX_CHUNKED(s0, e0, chunk, BODY)                                              \
    do {                                                                             \
        int64_t cs = (s0);                                                           \
        while (cs < (e0)) {                                                          \
            const int64_t ck = cs / (chunk);                                         \
            const int64_t ce = (ck + 1) * (chunk) < (e0) ? (ck + 1) * (chunk) : (e0); \
            BODY;                                                                    \
            cs = ce;                                                                 \
        }                                                                            \
    } while (0)

void dtnn_cx_quantize_i8(const float *RESTRICT x, int8_t *RESTRICT q, int64_t n,
                         int64_t chunk, const float *RESTRICT scales, float levels,
                         uint64_t key, int stochastic)
{
    const uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    CX_BLOCKS(n, CX_CHUNKED(s, e, chunk, {
        const float sc = scales[ck];
        const float inv = sc > 0.0f ? levels / sc : 0.0f;
        q8_run(x, q, cs, ce, inv, levels, k0, k1, stochastic);
    }));
}

CX_INLINE void dq8_body(const int8_t *RESTRICT q, float *RESTRICT out, int64_t s, int64_t e,
                        float f, int acc)
{
    int64_t i;
    if (acc)
        for (i = s; i < e; ++i)
            out[i] += (float)q[i] * f;
    else
        for (i = s; i < e; ++i)
            out[i] = (float)q[i] * f;
}
CX_CLONES(dq8, (const int8_t *RESTRICT q, float *RESTRICT out, int64_t s, int64_t e, float f,
                int acc), (q, out, s, e, f, acc))

void dtnn_cx_dequantize_i8(const int8_t *RESTRICT q, float *RESTRICT out, int64_t n,
                           int64_t chunk, const float *RESTRICT scales, double alpha,
                           double levels, int accumulate)
{
    CX_BLOCKS(n, CX_CHUNKED(s, e, chunk, {
        const float f = (float)((double)scales[ck] * alpha / levels);
        dq8_run(q, out, cs, ce, f, accumulate);
    }));
}

/* ---------------------------------------------------------------- TernGrad */
static inline uint32_t tern_code(float xv, float inv, int64_t i, uint32_t k0, uint32_t k1)
{
    const uint32_t keep = uniform_at(i, k0, k1) < fabsf(xv) * inv;
    return keep ? (xv < 0.0f ? 2u : 1u) : 0u;
}

/* bytes [s, e): elements 4s .. 4e */
CX_INLINE void tq_body(const float *RESTRICT x, uint8_t *RESTRICT packed, int64_t s, int64_t e,
                       float inv, uint32_t k0, uint32_t k1)
{
    int64_t j;
    for (j = s; j < e; ++j) {
        const int64_t i = 4 * j;
        packed[j] = (uint8_t)(tern_code(x[i], inv, i, k0, k1)
                              | tern_code(x[i + 1], inv, i + 1, k0, k1) << 2
                              | tern_code(x[i + 2], inv, i + 2, k0, k1) << 4
                              | tern_code(x[i + 3], inv, i + 3, k0, k1) << 6);
    }
}
CX_CLONES(tq, (const float *RESTRICT x, uint8_t *RESTRICT packed, int64_t s, int64_t e,
               float inv, uint32_t k0, uint32_t k1), (x, packed, s, e, inv, k0, k1))

void dtnn_cx_terngrad_quantize(const float *RESTRICT x, uint8_t *RESTRICT packed, int64_t n,
                               const float *RESTRICT scales, int64_t chunk, uint64_t key)
{
    const uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    const int64_t full = n / 4;
    const int64_t cb = chunk / 4;  /* chunk is a multiple of 4 */
    CX_BLOCKS(full, CX_CHUNKED(s, e, cb, {
        const float sc = scales[ck];
        tq_run(x, packed, cs, ce, sc > 0.0f ? 1.0f / sc : 0.0f, k0, k1);
    }));
    if (n % 4) {
        const float sc = scales[(4 * full) / chunk];
        const float inv = sc > 0.0f ? 1.0f / sc : 0.0f;
        uint32_t byte = 0;
        int64_t i;
        for (i = 4 * full; i < n; ++i)
            byte |= tern_code(x[i], inv, i, k0, k1) << (2 * (i - 4 * full));
        packed[full] = (uint8_t)byte;
    }
}

static inline float tern_value(uint32_t code, float value)
{
    return code == 1u ? value : (code == 2u ? -value : 0.0f);
}

CX_INLINE void tdq_body(const uint8_t *RESTRICT packed, float *RESTRICT out, int64_t s,
                        int64_t e, float value, int acc)
{
    int64_t j;
    int b;
    if (acc)
        for (j = s; j < e; ++j)
            for (b = 0; b < 4; ++b)
                out[4 * j + b] += tern_value(((uint32_t)packed[j] >> (2 * b)) & 3u, value);
    else
        for (j = s; j < e; ++j)
            for (b = 0; b < 4; ++b)
                out[4 * j + b] = tern_value(((uint32_t)packed[j] >> (2 * b)) & 3u, value);
}
CX_CLONES(tdq, (const uint8_t *RESTRICT packed, float *RESTRICT out, int64_t s, int64_t e,
                float value, int acc), (packed, out, s, e, value, acc))

void dtnn_cx_terngrad_dequantize(const uint8_t *RESTRICT packed, float *RESTRICT out,
                                 int64_t n, const float *RESTRICT scales, int64_t chunk,
                                 float alpha, int accumulate)
{
    const int64_t full = n / 4;
    const int64_t cb = chunk / 4;
    int64_t i;
    CX_BLOCKS(full, CX_CHUNKED(s, e, cb,
                               tdq_run(packed, out, cs, ce, scales[ck] * alpha, accumulate)));
    if (n % 4) {
        const float value = scales[(4 * full) / chunk] * alpha;
        for (i = 4 * full; i < n; ++i) {
            const float v = tern_value(((uint32_t)packed[i >> 2] >> (2 * (i & 3))) & 3u, value);
            out[i] = accumulate ? out[i] + v : v;
        }
    }
}

/* ---------------------------------------------------------------- sign */
CX_INLINE void addv_body(const float *RESTRICT x, float *RESTRICT e_, int64_t s, int64_t e)
{
    int64_t i;
    for (i = s; i < e; ++i)
        e_[i] += x[i];
}
CX_CLONES(addv, (const float *RESTRICT x, float *RESTRICT e_, int64_t s, int64_t e),
          (x, e_, s, e))

double dtnn_cx_add_l1(const float *RESTRICT x, float *RESTRICT e, int64_t n)
{
    const int64_t nb = (n + DTNN_CX_BLOCK - 1) / DTNN_CX_BLOCK;
    double *part = (double *)malloc((size_t)(nb > 0 ? nb : 1) * sizeof(double));
    if (part == NULL)
        return NAN;
    int64_t b;
    (void)cx_has_avx2();
#pragma omp parallel for schedule(static) if (n >= DTNN_CX_MIN_WORK)
    for (b = 0; b < nb; ++b) {
        const int64_t s = b * DTNN_CX_BLOCK;
        const int64_t len = (s + DTNN_CX_BLOCK <= n) ? DTNN_CX_BLOCK : n - s;
        if (x != NULL)
            addv_run(x, e, s, s + len);
        part[b] = block_sum_abs(e + s, len);
    }
    double r = 0.0;
    for (b = 0; b < nb; ++b)
        r += part[b];
    free(part);
    return r;
}

/* bytes [s, e) */
CX_INLINE void sp_body(float *RESTRICT c, uint8_t *RESTRICT bits, int64_t s, int64_t e,
                       float value, int ef)
{
    int64_t j;
    int b;
    for (j = s; j < e; ++j) {
        const float *p = c + 8 * j;
        uint32_t byte = 0;
        for (b = 0; b < 8; ++b)
            byte |= (uint32_t)(p[b] >= 0.0f) << b;
        bits[j] = (uint8_t)byte;
    }
    if (ef) {
        const int64_t i0 = 8 * s, i1 = 8 * e;
        int64_t i;
        for (i = i0; i < i1; ++i)
            c[i] -= c[i] >= 0.0f ? value : -value;
    }
}
CX_CLONES(sp, (float *RESTRICT c, uint8_t *RESTRICT bits, int64_t s, int64_t e, float value,
               int ef), (c, bits, s, e, value, ef))

void dtnn_cx_sign_pack(float *RESTRICT c, uint8_t *RESTRICT bits, int64_t n,
                       const float *RESTRICT values, int64_t chunk, int ef)
{
    const int64_t full = n / 8;
    const int64_t cb = chunk / 8;  /* chunk is a multiple of 8 */
    CX_BLOCKS(full, CX_CHUNKED(s, e, cb, sp_run(c, bits, cs, ce, values[ck], ef)));
    if (n % 8) {
        const float value = values[(8 * full) / chunk];
        uint32_t byte = 0;
        int64_t i;
        for (i = 8 * full; i < n; ++i) {
            byte |= (uint32_t)(c[i] >= 0.0f) << (i - 8 * full);
            if (ef)
                c[i] -= c[i] >= 0.0f ? value : -value;
        }
        bits[full] = (uint8_t)byte;
    }
}

CX_INLINE void su_body(const uint8_t *RESTRICT bits, float *RESTRICT out, int64_t s, int64_t e,
                       float value, int acc)
{
    int64_t j;
    int b;
    if (acc)
        for (j = s; j < e; ++j)
            for (b = 0; b < 8; ++b)
                out[8 * j + b] += (((uint32_t)bits[j] >> b) & 1u) ? value : -value;
    else
        for (j = s; j < e; ++j)
            for (b = 0; b < 8; ++b)
                out[8 * j + b] = (((uint32_t)bits[j] >> b) & 1u) ? value : -value;
}
CX_CLONES(su, (const uint8_t *RESTRICT bits, float *RESTRICT out, int64_t s, int64_t e,
               float value, int acc), (bits, out, s, e, value, acc))

void dtnn_cx_sign_unpack(const uint8_t *RESTRICT bits, float *RESTRICT out, int64_t n,
                         const float *RESTRICT values, int64_t chunk, float alpha,
                         int accumulate)
{
    const int64_t full = n / 8;
    const int64_t cb = chunk / 8;
    int64_t i;
    CX_BLOCKS(full, CX_CHUNKED(s, e, cb,
                               su_run(bits, out, cs, ce, values[ck] * alpha, accumulate)));
    if (n % 8) {
        const float value = values[(8 * full) / chunk] * alpha;
        for (i = 8 * full; i < n; ++i) {
            const float v = ((bits[i >> 3] >> (i & 7)) & 1u) ? value : -value;
            out[i] = accumulate ? out[i] + v : v;
        }
    }
}

/* ---------------------------------------------------------------- top-k / sparse */
static int nthreads_for(int64_t n)
{
#ifdef _OPENMP
    return n >= DTNN_CX_MIN_WORK ? omp_get_max_threads() : 1;
#else
    (void)n;
    return 1;
#endif
}

/* find the bin holding the need-th largest (counting from the top); *above = count in
 * higher bins */
static uint32_t find_bin(const uint32_t *hist, int64_t need, int64_t *above)
{
    int64_t acc = 0;
    int32_t b;
    for (b = 65535; b > 0; --b) {
        if (acc + (int64_t)hist[b] >= need)
            break;
        acc += hist[b];
    }
    *above = acc;
    return (uint32_t)b;
}

static int64_t topk_hist(const float *RESTRICT x, float *RESTRICT c, int64_t n, int64_t k,
                         int32_t *RESTRICT idx, float *RESTRICT val, int zero)
{
    int64_t i;
    if (k <= 0) {
        if (x != NULL)
            for (i = 0; i < n; ++i)
                c[i] += x[i];
        return 0;
    }
    if (k > n)
        k = n;
    const int nt = nthreads_for(n);
    uint32_t *hist = (uint32_t *)calloc((size_t)nt * 65536u, sizeof(uint32_t));
    if (hist == NULL)
        return -1;
    /* pass A: (c += x) and histogram of the high 16 bits of |c| */
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
#ifdef _OPENMP
        uint32_t *h = hist + (size_t)omp_get_thread_num() * 65536u;
#else
        uint32_t *h = hist;
#endif
        int64_t j;
#pragma omp for schedule(static)
        for (j = 0; j < n; ++j) {
            if (x != NULL)
                c[j] += x[j];
            h[(f2u(c[j]) & 0x7fffffffu) >> 16]++;
        }
    }
    int t;
    for (t = 1; t < nt; ++t)
        for (i = 0; i < 65536; ++i)
            hist[i] += hist[(size_t)t * 65536u + i];
    int64_t above;
    const uint32_t hi = find_bin(hist, k, &above);
    const int64_t need = k - above;
    /* pass B: histogram of the low 16 bits inside bin hi */
    memset(hist, 0, (size_t)nt * 65536u * sizeof(uint32_t));
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
#ifdef _OPENMP
        uint32_t *h = hist + (size_t)omp_get_thread_num() * 65536u;
#else
        uint32_t *h = hist;
#endif
        int64_t j;
#pragma omp for schedule(static)
        for (j = 0; j < n; ++j) {
            const uint32_t a = f2u(c[j]) & 0x7fffffffu;
            if ((a >> 16) == hi)
                h[a & 0xffffu]++;
        }
    }
    for (t = 1; t < nt; ++t)
        for (i = 0; i < 65536; ++i)
            hist[i] += hist[(size_t)t * 65536u + i];
    int64_t above2;
    const uint32_t lo = find_bin(hist, need, &above2);
    free(hist);
    const uint32_t thr = (hi << 16) | lo;
    int64_t ties = need - above2;
    /* pass C: collect in index order */
    int64_t m = 0;
    for (i = 0; i < n; ++i) {
        const uint32_t a = f2u(c[i]) & 0x7fffffffu;
        if (a > thr || (a == thr && ties > 0)) {
            ties -= (a == thr);
            idx[m] = (int32_t)i;
            val[m] = c[i];
            if (zero)
                c[i] = 0.0f;
            ++m;
        }
    }
    return m;
}

static int cmp_u32_desc(const void *a, const void *b)
{
    const uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? 1 : (x > y ? -1 : 0);
}

/* (threshold bits, ties to take) of the k largest among m magnitude bit patterns */
static void select_bits(const uint32_t *bits, int64_t m, int64_t k, uint32_t *thr,
                        int64_t *ties)
{
    uint32_t *hist = (uint32_t *)calloc(65536u, sizeof(uint32_t));
    int64_t i, above, above2;
    for (i = 0; i < m; ++i)
        hist[bits[i] >> 16]++;
    const uint32_t hi = find_bin(hist, k, &above);
    memset(hist, 0, 65536u * sizeof(uint32_t));
    for (i = 0; i < m; ++i)
        if ((bits[i] >> 16) == hi)
            hist[bits[i] & 0xffffu]++;
    const uint32_t lo = find_bin(hist, k - above, &above2);
    free(hist);
    *thr = (hi << 16) | lo;
    *ties = k - above - above2;
}

#define TOPK_SAMPLE 4096

/* Sampling selection: a strided sample of |c + x| gives a threshold t that about 2k
 * (+ a margin) elements exceed; one fused pass does c += x and collects the
 * candidates >= t in index order; the exact k-th largest is then found among the
 * candidates.  Every element >= the true k-th largest is a candidate as long as at
 * least k elements are, so the result is exactly topk_hist's; if the sample
 * misjudged (fewer than k or too many candidates), fall back to topk_hist. */
int64_t dtnn_cx_topk(const float *RESTRICT x, float *RESTRICT c, int64_t n, int64_t k,
                     int32_t *RESTRICT idx, float *RESTRICT val, int zero)
{
    int64_t i;
    if (k <= 0 || k >= n || n < 8 * TOPK_SAMPLE)
        return topk_hist(x, c, n, k, idx, val, zero);
    const int64_t stride = n / TOPK_SAMPLE;
    uint32_t sample[TOPK_SAMPLE];
    for (i = 0; i < TOPK_SAMPLE; ++i) {
        const int64_t p = i * stride;
        const float v = x != NULL ? c[p] + x[p] : c[p];
        sample[i] = f2u(v) & 0x7fffffffu;
    }
    qsort(sample, TOPK_SAMPLE, sizeof(uint32_t), cmp_u32_desc);
    const double frac = (double)k / (double)n;
    int64_t r = (int64_t)(2.0 * frac * TOPK_SAMPLE + 4.0 * sqrt(frac * TOPK_SAMPLE) + 8.0);
    if (r >= TOPK_SAMPLE)
        return topk_hist(x, c, n, k, idx, val, zero);
    const uint32_t t = sample[r];
    const int64_t cap = 4 * k + 4096 < n ? 4 * k + 4096 : n;
    int32_t *cidx = (int32_t *)malloc((size_t)cap * sizeof(int32_t));
    uint32_t *cbits = (uint32_t *)malloc((size_t)cap * sizeof(uint32_t));
    if (cidx == NULL || cbits == NULL) {
        free(cidx);
        free(cbits);
        return -1;
    }
    int64_t m = 0;
    int overflow = 0;
    if (x != NULL) {
        for (i = 0; i < n; ++i) {
            const float v = c[i] + x[i];
            const uint32_t a = f2u(v) & 0x7fffffffu;
            c[i] = v;
            if (a >= t) {
                if (m < cap) {
                    cidx[m] = (int32_t)i;
                    cbits[m] = a;
                }
                ++m;
            }
        }
    } else {
        for (i = 0; i < n; ++i) {
            const uint32_t a = f2u(c[i]) & 0x7fffffffu;
            if (a >= t) {
                if (m < cap) {
                    cidx[m] = (int32_t)i;
                    cbits[m] = a;
                }
                ++m;
            }
        }
    }
    overflow = m > cap;
    if (overflow || m < k) {  /* c already holds c + x */
        free(cidx);
        free(cbits);
        return topk_hist(NULL, c, n, k, idx, val, zero);
    }
    uint32_t thr;
    int64_t ties, j, out = 0;
    select_bits(cbits, m, k, &thr, &ties);
    for (j = 0; j < m; ++j) {
        const uint32_t a = cbits[j];
        if (a > thr || (a == thr && ties > 0)) {
            ties -= (a == thr);
            const int32_t p = cidx[j];
            idx[out] = p;
            val[out] = c[p];
            if (zero)
                c[p] = 0.0f;
            ++out;
        }
    }
    free(cidx);
    free(cbits);
    return out;
}

void dtnn_cx_scatter_add(const int32_t *RESTRICT idx, const float *RESTRICT val, int64_t k,
                         float alpha, float *RESTRICT out)
{
    int64_t j;
    /* indices are distinct within one payload: no two iterations touch one element */
#pragma omp parallel for schedule(static) if (k >= DTNN_CX_MIN_WORK)
    for (j = 0; j < k; ++j)
        out[idx[j]] += alpha * val[j];
}

void dtnn_cx_gather(const float *RESTRICT x, float *RESTRICT c, int64_t n,
                    const int32_t *RESTRICT idx, int64_t k, float *RESTRICT val, int zero)
{
    int64_t i, j;
    if (x != NULL) {
#pragma omp parallel for schedule(static) if (n >= DTNN_CX_MIN_WORK)
        for (i = 0; i < n; ++i)
            c[i] += x[i];
    }
    for (j = 0; j < k; ++j) {
        val[j] = c[idx[j]];
        if (zero)
            c[idx[j]] = 0.0f;
    }
}
