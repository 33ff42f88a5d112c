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
    return (float)(h >> 8) * (1.0f / 16777216.0f);
}

void dtnn_cx_uniform(float *RESTRICT out, int64_t n, uint64_t key)
{
    const uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    int64_t i;
#pragma omp parallel for schedule(static) if (n >= DTNN_CX_MIN_WORK)
    for (i = 0; i < n; ++i)
        out[i] = uniform_at(i, k0, k1);
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

void dtnn_cx_f32_to_f16(const float *RESTRICT x, uint16_t *RESTRICT h, int64_t n, float scale)
{
    int64_t i;
#pragma omp parallel for schedule(static) if (n >= DTNN_CX_MIN_WORK)
    for (i = 0; i < n; ++i)
        h[i] = f32_to_f16_bits(x[i] * scale);
}

void dtnn_cx_f16_to_f32(const uint16_t *RESTRICT h, float *RESTRICT out, int64_t n,
                        float alpha, int accumulate)
{
    int64_t i;
    if (accumulate) {
#pragma omp parallel for schedule(static) if (n >= DTNN_CX_MIN_WORK)
        for (i = 0; i < n; ++i)
            out[i] += f16_bits_to_f32(h[i]) * alpha;
    } else {
#pragma omp parallel for schedule(static) if (n >= DTNN_CX_MIN_WORK)
        for (i = 0; i < n; ++i)
            out[i] = f16_bits_to_f32(h[i]) * alpha;
    }
}

static inline uint16_t f32_to_bf16_bits(float v)
{
    const uint32_t u = f2u(v);
    const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
    const uint32_t nan = (u >> 16) | 0x40u;
    return (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? nan : rounded);
}

void dtnn_cx_f32_to_bf16(const float *RESTRICT x, uint16_t *RESTRICT h, int64_t n, float scale)
{
    int64_t i;
#pragma omp parallel for schedule(static) if (n >= DTNN_CX_MIN_WORK)
    for (i = 0; i < n; ++i)
        h[i] = f32_to_bf16_bits(x[i] * scale);
}

void dtnn_cx_bf16_to_f32(const uint16_t *RESTRICT h, float *RESTRICT out, int64_t n,
                         float alpha, int accumulate)
{
    int64_t i;
    if (accumulate) {
#pragma omp parallel for schedule(static) if (n >= DTNN_CX_MIN_WORK)
        for (i = 0; i < n; ++i)
            out[i] += u2f((uint32_t)h[i] << 16) * alpha;
    } else {
#pragma omp parallel for schedule(static) if (n >= DTNN_CX_MIN_WORK)
        for (i = 0; i < n; ++i)
            out[i] = u2f((uint32_t)h[i] << 16) * alpha;
    }
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
void dtnn_cx_quantize_i8(const float *RESTRICT x, int8_t *RESTRICT q, int64_t n,
                         int64_t chunk, const float *RESTRICT scales, float levels,
                         uint64_t key, int stochastic)
{
    const uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    const int64_t nb = (n + DTNN_CX_BLOCK - 1) / DTNN_CX_BLOCK;
    int64_t b;
#pragma omp parallel for schedule(static) if (n >= DTNN_CX_MIN_WORK)
    for (b = 0; b < nb; ++b) {
        const int64_t end = (b + 1) * DTNN_CX_BLOCK < n ? (b + 1) * DTNN_CX_BLOCK : n;
        int64_t s = b * DTNN_CX_BLOCK;
        while (s < end) {
            const int64_t c = s / chunk;
            const int64_t stop = (c + 1) * chunk < end ? (c + 1) * chunk : end;
            const float sc = scales[c];
            const float inv = sc > 0.0f ? levels / sc : 0.0f;
            int64_t i;
            if (stochastic) {
                for (i = s; i < stop; ++i) {
                    const float v = fabsf(x[i]) * inv;
                    float l = floorf(v + uniform_at(i, k0, k1));
                    l = l < levels ? l : levels;
                    q[i] = (int8_t)(x[i] < 0.0f ? -l : l);
                }
            } else {
                for (i = s; i < stop; ++i) {
                    const float v = fabsf(x[i]) * inv;
                    float l = floorf(v + 0.5f);
                    l = l < levels ? l : levels;
                    q[i] = (int8_t)(x[i] < 0.0f ? -l : l);
                }
            }
            s = stop;
        }
    }
}

void dtnn_cx_dequantize_i8(const int8_t *RESTRICT q, float *RESTRICT out, int64_t n,
                           int64_t chunk, const float *RESTRICT scales, double alpha,
                           double levels, int accumulate)
{
    const int64_t nb = (n + DTNN_CX_BLOCK - 1) / DTNN_CX_BLOCK;
    int64_t b;
#pragma omp parallel for schedule(static) if (n >= DTNN_CX_MIN_WORK)
    for (b = 0; b < nb; ++b) {
        const int64_t end = (b + 1) * DTNN_CX_BLOCK < n ? (b + 1) * DTNN_CX_BLOCK : n;
        int64_t s = b * DTNN_CX_BLOCK;
        while (s < end) {
            const int64_t c = s / chunk;
            const int64_t stop = (c + 1) * chunk < end ? (c + 1) * chunk : end;
            const float f = (float)((double)scales[c] * alpha / levels);
            int64_t i;
            if (accumulate)
                for (i = s; i < stop; ++i)
                    out[i] += (float)q[i] * f;
            else
                for (i = s; i < stop; ++i)
                    out[i] = (float)q[i] * f;
            s = stop;
        }
    }
}

/* ---------------------------------------------------------------- TernGrad */
void dtnn_cx_terngrad_quantize(const float *RESTRICT x, uint8_t *RESTRICT packed, int64_t n,
                               float scale, uint64_t key)
{
    const uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
    const float inv = scale > 0.0f ? 1.0f / scale : 0.0f;
    const int64_t full = n / 4;
    int64_t j;
#pragma omp parallel for schedule(static) if (n >= DTNN_CX_MIN_WORK)
    for (j = 0; j < full; ++j) {
        uint32_t byte = 0;
        int b;
        for (b = 0; b < 4; ++b) {
            const int64_t i = 4 * j + b;
            const float v = fabsf(x[i]) * inv;
            const uint32_t keep = uniform_at(i, k0, k1) < v;
            const uint32_t code = keep ? (x[i] < 0.0f ? 2u : 1u) : 0u;
            byte |= code << (2 * b);
        }
        packed[j] = (uint8_t)byte;
    }
    if (n % 4) {
        uint32_t byte = 0;
        int64_t i;
        for (i = 4 * full; i < n; ++i) {
            const float v = fabsf(x[i]) * inv;
            const uint32_t keep = uniform_at(i, k0, k1) < v;
            const uint32_t code = keep ? (x[i] < 0.0f ? 2u : 1u) : 0u;
            byte |= code << (2 * (i - 4 * full));
        }
        packed[full] = (uint8_t)byte;
    }
}

void dtnn_cx_terngrad_dequantize(const uint8_t *RESTRICT packed, float *RESTRICT out,
                                 int64_t n, float value, int accumulate)
{
    int64_t i;
    if (accumulate) {
#pragma omp parallel for schedule(static) if (n >= DTNN_CX_MIN_WORK)
        for (i = 0; i < n; ++i) {
            const uint32_t code = ((uint32_t)packed[i >> 2] >> (2 * (i & 3))) & 3u;
            out[i] += code == 1u ? value : (code == 2u ? -value : 0.0f);
        }
    } else {
#pragma omp parallel for schedule(static) if (n >= DTNN_CX_MIN_WORK)
        for (i = 0; i < n; ++i) {
            const uint32_t code = ((uint32_t)packed[i >> 2] >> (2 * (i & 3))) & 3u;
            out[i] = code == 1u ? value : (code == 2u ? -value : 0.0f);
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
#pragma omp parallel for schedule(static) if (n >= DTNN_CX_MIN_WORK)
    for (b = 0; b < nb; ++b) {
        const int64_t s = b * DTNN_CX_BLOCK;
        const int64_t len = (s + DTNN_CX_BLOCK <= n) ? DTNN_CX_BLOCK : n - s;
        float *RESTRICT p = e + s;
        if (x != NULL) {
            const float *RESTRICT xp = x + s;
            int64_t i;
            for (i = 0; i < len; ++i)
                p[i] += xp[i];
        }
        part[b] = block_sum_abs(p, len);
    }
    double r = 0.0;
    for (b = 0; b < nb; ++b)
        r += part[b];
    free(part);
    return r;
}

void dtnn_cx_sign_pack(float *RESTRICT c, uint8_t *RESTRICT bits, int64_t n, float value,
                       int ef)
{
    const int64_t full = n / 8;
    int64_t j;
#pragma omp parallel for schedule(static) if (n >= DTNN_CX_MIN_WORK)
    for (j = 0; j < full; ++j) {
        float *RESTRICT p = c + 8 * j;
        uint32_t byte = 0;
        int b;
        for (b = 0; b < 8; ++b)
            byte |= (uint32_t)(p[b] >= 0.0f) << b;
        bits[j] = (uint8_t)byte;
        if (ef)
            for (b = 0; b < 8; ++b)
                p[b] -= p[b] >= 0.0f ? value : -value;
    }
    if (n % 8) {
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

void dtnn_cx_sign_unpack(const uint8_t *RESTRICT bits, float *RESTRICT out, int64_t n,
                         float value, int accumulate)
{
    int64_t i;
    if (accumulate) {
#pragma omp parallel for schedule(static) if (n >= DTNN_CX_MIN_WORK)
        for (i = 0; i < n; ++i)
            out[i] += ((bits[i >> 3] >> (i & 7)) & 1u) ? value : -value;
    } else {
#pragma omp parallel for schedule(static) if (n >= DTNN_CX_MIN_WORK)
        for (i = 0; i < n; ++i)
            out[i] = ((bits[i >> 3] >> (i & 7)) & 1u) ? value : -value;
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

int64_t dtnn_cx_topk(const float *RESTRICT x, float *RESTRICT c, int64_t n, int64_t k,
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
