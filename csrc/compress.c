/*
 * Gradient-compression kernels (see compress.h for the contract and
 * dtnn/compress/twins.py for the numpy twins they are tested against).
 *
 * Loops are written as flat, branch-free element loops (selects instead of ifs,
 * fixed-width lane accumulators for reductions) so that GCC/Clang vectorise them at
 * -O3 without -ffast-math.  Floating-point contraction is switched off so that the
 * float32 arithmetic matches the numpy twins bit for bit even with -march=native.
 */
#include "compress_impl.h"

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

/* ---------------------------------------------------------------- RNG
 * (cx_stream and uniform_at: compress_impl.h) */
CX_INLINE void uni_body(float *RESTRICT out, int64_t s, int64_t e, uint32_t k0, uint32_t k1)
{
    const uint32_t i0 = (uint32_t)s, m = (uint32_t)(e - s);
    uint32_t j;
    out += s;
    for (j = 0; j < m; ++j)
        out[j] = uniform_at(i0 + j, k0, k1);
}
CX_CLONES3(uni, (float *RESTRICT out, int64_t s, int64_t e, uint32_t k0, uint32_t k1),
          (out, s, e, k0, k1))

void dtnn_cx_uniform(float *RESTRICT out, int64_t n, uint64_t key)
{
    uint32_t k0, k1;
    cx_stream(key, &k0, &k1);
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

/* ---------------------------------------------------------------- reductions
 * Sums: WIDE float partial sums (4 AVX2 vectors of independent adds, so the add
 * latency is hidden) over SUB elements, i.e. 16 terms per partial; those are folded
 * in double as a fixed tree and added to a double total.  The float stage costs at
 * most ~16 * 2^-24 (1e-6) relative for sums of non-negative terms; the order is
 * fixed, so the result does not depend on the thread count or the clone. */
#define WIDE 32
#define SUB 512

/* the WIDE float partials summed in double as a fixed tree */
CX_INLINE double fold_wide(const float *f)
{
    double d[WIDE / 2];
    int w, l;
    for (l = 0; l < WIDE / 2; ++l)
        d[l] = (double)f[l] + (double)f[l + WIDE / 2];
    for (w = WIDE / 4; w >= 1; w /= 2)
        for (l = 0; l < w; ++l)
            d[l] += d[l + w];
    return d[0];
}

/* name##_body(params): sum over j < m of TERM(j), as above; the < WIDE tail in double */
#define CX_WIDE_SUM(name, params, TERM)                                              \
    CX_INLINE double name##_body params                                              \
    {                                                                                \
        const int64_t full = m - m % WIDE;                                           \
        double r = 0.0;                                                              \
        int64_t s, j;                                                                \
        int l;                                                                       \
        for (s = 0; s < full; s += SUB) {                                            \
            const int64_t end = s + SUB < full ? s + SUB : full;                     \
            float f[WIDE];                                                           \
            for (l = 0; l < WIDE; ++l)                                               \
                f[l] = TERM(s + l);                                                  \
            for (j = s + WIDE; j < end; j += WIDE)                                   \
                for (l = 0; l < WIDE; ++l)                                           \
                    f[l] += TERM(j + l);                                             \
            r += fold_wide(f);                                                       \
        }                                                                            \
        for (j = full; j < m; ++j)                                                   \
            r += (double)TERM(j);                                                    \
        return r;                                                                    \
    }

#define SQ_TERM(j) (p[j] * p[j])
#define ABS_TERM(j) fabsf(p[j])
#define ADD_ABS_TERM(j) fabsf(e[j] += x[j]) /* error feedback: e += x, then |e| */
CX_WIDE_SUM(sum_sq, (const float *RESTRICT p, int64_t m), SQ_TERM)
CX_WIDE_SUM(sum_abs, (const float *RESTRICT p, int64_t m), ABS_TERM)
CX_WIDE_SUM(add_abs, (const float *RESTRICT x, float *RESTRICT e, int64_t m), ADD_ABS_TERM)
CX_CLONES_R(double, sum_sq, (const float *RESTRICT p, int64_t m), (p, m))
CX_SHARED_R(CX_CLONES3_R, double, sum_abs, (const float *RESTRICT p, int64_t m), (p, m))
CX_SHARED_R(CX_CLONES3_R, double, add_abs, (const float *RESTRICT x, float *RESTRICT e, int64_t m),
            (x, e, m))

/* max |p[j]| as bits (the order of non-negative floats), exact */
CX_INLINE uint32_t max_abs_body(const float *RESTRICT p, int64_t m)
{
    uint32_t acc[WIDE] = {0};
    const int64_t full = m - m % WIDE;
    int64_t j;
    int l;
    for (j = 0; j < full; j += WIDE)
        for (l = 0; l < WIDE; ++l) {
            const uint32_t a = f2u(p[j + l]) & 0x7fffffffu;
            acc[l] = a > acc[l] ? a : acc[l];
        }
    for (j = full; j < m; ++j) {
        const uint32_t a = f2u(p[j]) & 0x7fffffffu;
        acc[j - full] = a > acc[j - full] ? a : acc[j - full];
    }
    for (l = 1; l < WIDE; ++l)
        acc[0] = acc[l] > acc[0] ? acc[l] : acc[0];
    return acc[0];
}
CX_CLONES_R(uint32_t, max_abs, (const float *RESTRICT p, int64_t m), (p, m))

/* one block or chunk: kind 0 sum of squares, 1 max |x|, 2 sum |x| */
static double block_norm(const float *p, int64_t m, int kind)
{
    if (kind == 1)
        return (double)u2f(max_abs_run(p, m));
    return kind == 0 ? sum_sq_run(p, m) : sum_abs_run(p, m);
}
CX_INTERNAL double cx_block_norm(const float *p, int64_t m, int kind)
{
    return block_norm(p, m, kind);
}

/* kind 0: sum of squares, 1: max |x| (as bits, exact), 2: sum |x|; blocked so the
 * result does not depend on the thread count */
static double reduce_range(const float *p, int64_t m, int kind)
{
    const int64_t nb = (m + DTNN_CX_BLOCK - 1) / DTNN_CX_BLOCK;
    if (nb <= 1)
        return block_norm(p, m, kind);
    double *part = (double *)malloc((size_t)nb * sizeof(double));
    if (part == NULL)
        return NAN;
    int64_t b;
#pragma omp parallel for schedule(static) if (m >= DTNN_CX_MIN_WORK)
    for (b = 0; b < nb; ++b) {
        const int64_t s = b * DTNN_CX_BLOCK;
        const int64_t len = (s + DTNN_CX_BLOCK <= m) ? DTNN_CX_BLOCK : m - s;
        part[b] = block_norm(p + s, len, kind);
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
            const double r = block_norm(x + s, len, kind);
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
/* m elements from x[0] (element i0 of the call's stream) into q[0..m) */
CX_INLINE void q8_body(const float *RESTRICT x, int8_t *RESTRICT q, int64_t m_, uint32_t i0,
                       float inv, float levels, uint32_t k0, uint32_t k1, int stochastic)
{
    const uint32_t m = (uint32_t)m_;
    uint32_t j;
    if (stochastic) {
        for (j = 0; j < m; ++j) {
            float t = fabsf(x[j]) * inv + uniform_at(i0 + j, k0, k1);
            t = t < levels ? t : levels;
            const int32_t l = (int32_t)t;
            q[j] = (int8_t)(x[j] < 0.0f ? -l : l);
        }
    } else {
        for (j = 0; j < m; ++j) {
            float t = fabsf(x[j]) * inv + 0.5f;
            t = t < levels ? t : levels;
            const int32_t l = (int32_t)t;
            q[j] = (int8_t)(x[j] < 0.0f ? -l : l);
        }
    }
}
CX_SHARED(CX_CLONES3, q8, (const float *RESTRICT x, int8_t *RESTRICT q, int64_t m_, uint32_t i0,
                           float inv, float levels, uint32_t k0, uint32_t k1, int stochastic),
          (x, q, m_, i0, inv, levels, k0, k1, stochastic))

void dtnn_cx_quantize_i8(const float *RESTRICT x, int8_t *RESTRICT q, int64_t n,
                         int64_t chunk, const float *RESTRICT scales, float levels,
                         uint64_t key, int stochastic)
{
    uint32_t k0, k1;
    cx_stream(key, &k0, &k1);
    CX_BLOCKS(n, CX_CHUNKED(s, e, chunk, {
        const float sc = scales[ck];
        const float inv = sc > 0.0f ? levels / sc : 0.0f;
        q8_run(x + cs, q + cs, ce - cs, (uint32_t)cs, inv, levels, k0, k1, stochastic);
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
            out[i] = (float)q[i] * f + 0.0f;  /* +0.0f: bits of 0 + x (no -0) */
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
/* (tern_code: compress_impl.h) */
#define TQ_SUB 64  /* bytes per sub-block: the codes of 256 elements stay in L1 */

/* bytes [s, e): elements 4s .. 4e.  Two vectorisable passes per sub-block: one code
 * byte per element (contiguous, like quantize_i8), then each 4 code bytes, read as
 * one little-endian word, are folded into a byte. */
CX_INLINE void tq_body(const float *RESTRICT x, uint8_t *RESTRICT packed, int64_t nb,
                       uint32_t e0, float inv, uint32_t k0, uint32_t k1)
{
    uint32_t word[TQ_SUB];
    uint8_t *code = (uint8_t *)word;
    int64_t b;
    for (b = 0; b < nb; b += TQ_SUB) {
        const uint32_t m = (uint32_t)(nb - b < TQ_SUB ? nb - b : TQ_SUB);
        const uint32_t i0 = e0 + (uint32_t)(4 * b);
        const float *xb = x + 4 * b;
        uint32_t j;
        for (j = 0; j < 4 * m; ++j)
            code[j] = (uint8_t)tern_code(xb[j], inv, i0 + j, k0, k1);
        for (j = 0; j < m; ++j) {
            const uint32_t w = CX_LE32(word[j]);
            packed[b + j] = (uint8_t)(w | w >> 6 | w >> 12 | w >> 18);
        }
    }
}
CX_SHARED(CX_CLONES3, tq, (const float *RESTRICT x, uint8_t *RESTRICT packed, int64_t nb,
                           uint32_t e0, float inv, uint32_t k0, uint32_t k1),
          (x, packed, nb, e0, inv, k0, k1))

void dtnn_cx_terngrad_quantize(const float *RESTRICT x, uint8_t *RESTRICT packed, int64_t n,
                               const float *RESTRICT scales, int64_t chunk, uint64_t key)
{
    uint32_t k0, k1;
    cx_stream(key, &k0, &k1);
    const int64_t full = n / 4;
    const int64_t cb = chunk / 4;  /* chunk is a multiple of 4 */
    CX_BLOCKS(full, CX_CHUNKED(s, e, cb, {
        const float sc = scales[ck];
        tq_run(x + 4 * cs, packed + cs, ce - cs, (uint32_t)(4 * cs), sc > 0.0f ? 1.0f / sc : 0.0f,
               k0, k1);
    }));
    if (n % 4) {
        const float sc = scales[(4 * full) / chunk];
        const float inv = sc > 0.0f ? 1.0f / sc : 0.0f;
        uint32_t byte = 0;
        int64_t i;
        for (i = 4 * full; i < n; ++i)
            byte |= tern_code(x[i], inv, (uint32_t)i, k0, k1) << (2 * (i - 4 * full));
        packed[full] = (uint8_t)byte;
    }
}

static inline float tern_value(uint32_t code, float value)
{
    return code == 1u ? value : (code == 2u ? -value : 0.0f);
}

/* tern_value without selects, for the vectoriser: codes 1 and 2 keep |value| (bit
 * 0 of code ^ code >> 1), code 2 flips the sign bit (negation), 0 and 3 give +0 */
static inline float tern_value_bits(uint32_t code, float value)
{
    const uint32_t keep = (code ^ (code >> 1)) & 1u;
    return u2f((f2u(value) ^ ((code >> 1) << 31)) & (0u - keep));
}

CX_INLINE void tdq_body(const uint8_t *RESTRICT packed, float *RESTRICT out, int64_t s,
                        int64_t e, float value, int acc)
{
    int64_t j;
    int b;
    if (acc)
        for (j = s; j < e; ++j)
            for (b = 0; b < 4; ++b)
                out[4 * j + b] += tern_value_bits(((uint32_t)packed[j] >> (2 * b)) & 3u, value);
    else
        for (j = s; j < e; ++j)
            for (b = 0; b < 4; ++b)
                out[4 * j + b] = tern_value_bits(((uint32_t)packed[j] >> (2 * b)) & 3u, value) + 0.0f;
}
CX_CLONES3(tdq, (const uint8_t *RESTRICT packed, float *RESTRICT out, int64_t s, int64_t e,
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
            out[i] = accumulate ? out[i] + v : v + 0.0f;
        }
    }
}

/* ---------------------------------------------------------------- sign */
double dtnn_cx_add_l1(const float *RESTRICT x, float *RESTRICT e, int64_t n)
{
    const int64_t nb = (n + DTNN_CX_BLOCK - 1) / DTNN_CX_BLOCK;
    double *part = (double *)malloc((size_t)(nb > 0 ? nb : 1) * sizeof(double));
    if (part == NULL)
        return NAN;
    int64_t b;
    (void)cx_has_avx2();
    (void)cx_has_avx512();
#pragma omp parallel for schedule(static) if (n >= DTNN_CX_MIN_WORK)
    for (b = 0; b < nb; ++b) {
        const int64_t s = b * DTNN_CX_BLOCK;
        const int64_t len = (s + DTNN_CX_BLOCK <= n) ? DTNN_CX_BLOCK : n - s;
        part[b] = x != NULL ? add_abs_run(x + s, e + s, len) : sum_abs_run(e + s, len);
    }
    double r = 0.0;
    for (b = 0; b < nb; ++b)
        r += part[b];
    free(part);
    return r;
}

/* nb bytes: c[0 .. 8 nb) into bits[0 .. nb) */
CX_INLINE void sp_body(float *RESTRICT c, uint8_t *RESTRICT bits, int64_t nb, float value, int ef)
{
    int64_t j;
    int b;
    for (j = 0; j < nb; ++j) {
        const float *p = c + 8 * j;
        uint32_t byte = 0;
        for (b = 0; b < 8; ++b)
            byte |= (uint32_t)(p[b] >= 0.0f) << b;
        bits[j] = (uint8_t)byte;
    }
    if (ef) {
        const int64_t i1 = 8 * nb;
        int64_t i;
        for (i = 0; i < i1; ++i)
            c[i] -= c[i] >= 0.0f ? value : -value;
    }
}
CX_SHARED(CX_CLONES3, sp, (float *RESTRICT c, uint8_t *RESTRICT bits, int64_t nb, float value,
                           int ef), (c, bits, nb, value, ef))

void dtnn_cx_sign_pack(float *RESTRICT c, uint8_t *RESTRICT bits, int64_t n,
                       const float *RESTRICT values, int64_t chunk, int ef)
{
    const int64_t full = n / 8;
    const int64_t cb = chunk / 8;  /* chunk is a multiple of 8 */
    CX_BLOCKS(full, CX_CHUNKED(s, e, cb, sp_run(c + 8 * cs, bits + cs, ce - cs, values[ck], ef)));
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

/* Scaled sign in one pass per chunk (chunk <= DTNN_CX_BLOCK: the chunk stays in L1
 * between its three steps): c += x (if x), the chunk's mean |c| -> values[ck], pack
 * the bits (and c -= sent value, ef).  The same functions on the same chunk starts as
 * add_l1 + chunk_norms(l1) + sign_pack, so the same bits; larger chunks run those. */
void dtnn_cx_sign_encode(const float *RESTRICT x, float *RESTRICT c, int64_t n, int64_t chunk,
                         float *RESTRICT values, uint8_t *RESTRICT bits, int ef)
{
    const int64_t nc = (n + chunk - 1) / chunk;
    int64_t k;
    if (chunk > DTNN_CX_BLOCK || chunk % 8) {
        if (x != NULL)
            dtnn_cx_add_l1(x, c, n);
        dtnn_cx_chunk_norms(c, n, chunk, 2, values);
        for (k = 0; k < nc; ++k) {
            const int64_t len = (k + 1) * chunk <= n ? chunk : n - k * chunk;
            values[k] = values[k] / (float)len;
        }
        dtnn_cx_sign_pack(c, bits, n, values, chunk, ef);
        return;
    }
    (void)cx_has_avx2();
    (void)cx_has_avx512();
#pragma omp parallel for schedule(static) if (n >= DTNN_CX_MIN_WORK)
    for (k = 0; k < nc; ++k) {
        const int64_t s = k * chunk;
        const int64_t len = (s + chunk <= n) ? chunk : n - s;
        const double r = x != NULL ? add_abs_run(x + s, c + s, len) : sum_abs_run(c + s, len);
        const float value = (float)r / (float)len;
        const int64_t whole = len / 8;
        int64_t i;
        values[k] = value;
        if (whole)
            sp_run(c + s, bits + s / 8, whole, value, ef);
        if (len % 8) {  /* only the last chunk */
            uint32_t byte = 0;
            for (i = s + 8 * whole; i < s + len; ++i) {
                byte |= (uint32_t)(c[i] >= 0.0f) << (i - s - 8 * whole);
                if (ef)
                    c[i] -= c[i] >= 0.0f ? value : -value;
            }
            bits[s / 8 + whole] = (uint8_t)byte;
        }
    }
}

/* +-value by flipping the sign bit where the bit is 0 (= negation), no select */
static inline float sign_value(uint32_t bit, float value)
{
    return u2f(f2u(value) ^ ((bit ^ 1u) << 31));
}

CX_INLINE void su_body(const uint8_t *RESTRICT bits, float *RESTRICT out, int64_t s, int64_t e,
                       float value, int acc)
{
    int64_t j;
    int b;
    if (acc)
        for (j = s; j < e; ++j)
            for (b = 0; b < 8; ++b)
                out[8 * j + b] += sign_value(((uint32_t)bits[j] >> b) & 1u, value);
    else
        for (j = s; j < e; ++j)
            for (b = 0; b < 8; ++b)
                out[8 * j + b] = sign_value(((uint32_t)bits[j] >> b) & 1u, value) + 0.0f;
}
CX_CLONES3(su, (const uint8_t *RESTRICT bits, float *RESTRICT out, int64_t s, int64_t e,
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
            out[i] = accumulate ? out[i] + v : v + 0.0f;
        }
    }
}

/* ---------------------------------------------------------------- windowed decode
 * Elements [s0, e0) of an int8 (kind 0), TernGrad (1) or sign (2) payload decoded
 * into out[0 .. e0 - s0): the quantised ring decodes a chunk straight into the flat
 * gradient's pieces, or adds it to the rank's own chunk read from them, without
 * staging the whole unit.  mode 0: out = v (+0.0f: no -0, like the set kernels),
 * 1: out += v, 2: out = base + v (base and out do not overlap).  v and the float
 * operations are those of dequantize_i8 / terngrad_dequantize / sign_unpack, so a
 * window gives the same bits as the slice of a whole decode (mode 1 with out = base
 * gives the bits of mode 2). */
#define CX_WCOMBINE(mode, out, base, k, v)                                             \
    do {                                                                               \
        if ((mode) == 2)                                                               \
            (out)[k] = (base)[k] + (v);                                                \
        else if ((mode) == 1)                                                          \
            (out)[k] += (v);                                                           \
        else                                                                           \
            (out)[k] = (v) + 0.0f;                                                     \
    } while (0)

CX_INLINE void dq8w_body(const int8_t *RESTRICT q, float *RESTRICT out,
                         const float *RESTRICT base, int64_t m, float f, int mode)
{
    int64_t i;
    if (mode == 2)
        for (i = 0; i < m; ++i)
            out[i] = base[i] + (float)q[i] * f;
    else if (mode == 1)
        for (i = 0; i < m; ++i)
            out[i] += (float)q[i] * f;
    else
        for (i = 0; i < m; ++i)
            out[i] = (float)q[i] * f + 0.0f;
}
CX_SHARED(CX_CLONES, dq8w, (const int8_t *RESTRICT q, float *RESTRICT out,
                            const float *RESTRICT base, int64_t m, float f, int mode),
          (q, out, base, m, f, mode))

/* nb whole bytes of packed codes: 4 (TernGrad) or 8 (sign) elements each */
CX_INLINE void tdqw_body(const uint8_t *RESTRICT packed, float *RESTRICT out,
                         const float *RESTRICT base, int64_t nb, float value, int mode)
{
    int64_t j;
    int b;
    if (mode == 2)
        for (j = 0; j < nb; ++j)
            for (b = 0; b < 4; ++b)
                out[4 * j + b] = base[4 * j + b] +
                    tern_value_bits(((uint32_t)packed[j] >> (2 * b)) & 3u, value);
    else if (mode == 1)
        for (j = 0; j < nb; ++j)
            for (b = 0; b < 4; ++b)
                out[4 * j + b] += tern_value_bits(((uint32_t)packed[j] >> (2 * b)) & 3u, value);
    else
        for (j = 0; j < nb; ++j)
            for (b = 0; b < 4; ++b)
                out[4 * j + b] =
                    tern_value_bits(((uint32_t)packed[j] >> (2 * b)) & 3u, value) + 0.0f;
}
CX_CLONES3(tdqw, (const uint8_t *RESTRICT packed, float *RESTRICT out, const float *RESTRICT base,
                 int64_t nb, float value, int mode), (packed, out, base, nb, value, mode))

CX_INLINE void suw_body(const uint8_t *RESTRICT bits, float *RESTRICT out,
                        const float *RESTRICT base, int64_t nb, float value, int mode)
{
    int64_t j;
    int b;
    if (mode == 2)
        for (j = 0; j < nb; ++j)
            for (b = 0; b < 8; ++b)
                out[8 * j + b] = base[8 * j + b] + sign_value(((uint32_t)bits[j] >> b) & 1u, value);
    else if (mode == 1)
        for (j = 0; j < nb; ++j)
            for (b = 0; b < 8; ++b)
                out[8 * j + b] += sign_value(((uint32_t)bits[j] >> b) & 1u, value);
    else
        for (j = 0; j < nb; ++j)
            for (b = 0; b < 8; ++b)
                out[8 * j + b] = sign_value(((uint32_t)bits[j] >> b) & 1u, value) + 0.0f;
}
CX_CLONES3(suw, (const uint8_t *RESTRICT bits, float *RESTRICT out, const float *RESTRICT base,
                int64_t nb, float value, int mode), (bits, out, base, nb, value, mode))

static inline float packed_value(int kind, const uint8_t *codes, int64_t g, float value)
{
    if (kind == 1)
        return tern_value_bits(((uint32_t)codes[g >> 2] >> (2 * (g & 3))) & 3u, value);
    return sign_value(((uint32_t)codes[g >> 3] >> (g & 7)) & 1u, value);
}

/* global elements [gs, ge) of one chunk (one scale): head and tail element by
 * element, the whole bytes between through the vectorised bodies */
static void window_packed(int kind, const uint8_t *codes, int64_t gs, int64_t ge, float value,
                          int64_t s0, const float *base, float *out, int mode)
{
    const int64_t per = kind == 1 ? 4 : 8;
    int64_t a = (gs + per - 1) / per * per, z = ge / per * per, g;
    if (a > ge)
        a = z = ge;
    for (g = gs; g < a; ++g) {
        const float v = packed_value(kind, codes, g, value);
        CX_WCOMBINE(mode, out, base, g - s0, v);
    }
    if (z > a) {
        const float *bp = mode == 2 ? base + (a - s0) : NULL;
        if (kind == 1)
            tdqw_run(codes + a / 4, out + (a - s0), bp, (z - a) / 4, value, mode);
        else
            suw_run(codes + a / 8, out + (a - s0), bp, (z - a) / 8, value, mode);
    }
    for (g = z > a ? z : a; g < ge; ++g) {
        const float v = packed_value(kind, codes, g, value);
        CX_WCOMBINE(mode, out, base, g - s0, v);
    }
}
CX_INTERNAL void cx_window_packed(int kind, const uint8_t *codes, int64_t gs, int64_t ge,
                                  float value, int64_t s0, const float *base, float *out, int mode)
{
    window_packed(kind, codes, gs, ge, value, s0, base, out, mode);
}

void dtnn_cx_decode_window(int kind, const uint8_t *RESTRICT codes, const float *RESTRICT scales,
                           int64_t chunk, double alpha, double levels, int64_t s0, int64_t e0,
                           const float *base, float *out, int mode)
{
    const int64_t n = e0 - s0;  /* named n: CX_BLOCKS's OpenMP pragma tests n */
    CX_BLOCKS(n, CX_CHUNKED(s0 + s, s0 + e, chunk, {
        if (kind == 0) {
            const float f = (float)((double)scales[ck] * alpha / levels);
            dq8w_run((const int8_t *)codes + cs, out + (cs - s0),
                     mode == 2 ? base + (cs - s0) : NULL, ce - cs, f, mode);
        } else {
            window_packed(kind, codes, cs, ce, scales[ck] * (float)alpha, s0, base, out, mode);
        }
    }));
}
