/*
 * Counter-based random numbers: see rng.h.  Why C: random-k drew its 1 % of indices
 * with numpy's Generator.choice(replace=False) + sort, 0.58 ms per step for simplecnn's
 * 402k gradients (benchmarks/results/scaling.md), more than the gather it feeds.  Here
 * the draw is about k Philox words and one pass over an n-bit map.
 */
#include <stdlib.h>
#include <string.h>

#include "dtnn_kernels.h"
#include "rng.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>
#endif

/* the Philox4x64 multipliers and Weyl key increments (SC 2011, table 2) */
#define PHILOX_M0 0xD2E7470EE14C6C93ULL
#define PHILOX_M1 0xCA5A826395121157ULL
#define PHILOX_W0 0x9E3779B97F4A7C15ULL
#define PHILOX_W1 0xBB67AE8584CAA73BULL

/* the full 128-bit product a * b as (hi, lo) */
static inline void mul_hilo(uint64_t a, uint64_t b, uint64_t *hi, uint64_t *lo)
{
#if defined(__SIZEOF_INT128__)
    unsigned __int128 p = (unsigned __int128)a * b;
    *hi = (uint64_t)(p >> 64);
    *lo = (uint64_t)p;
#elif defined(_MSC_VER) && defined(_M_X64)
    *lo = _umul128(a, b, hi);
#else
    uint64_t a0 = a & 0xFFFFFFFFu, a1 = a >> 32, b0 = b & 0xFFFFFFFFu, b1 = b >> 32;
    uint64_t p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0, p11 = a1 * b1;
    uint64_t mid = (p00 >> 32) + (p01 & 0xFFFFFFFFu) + (p10 & 0xFFFFFFFFu);
    *hi = p11 + (p01 >> 32) + (p10 >> 32) + (mid >> 32);
    *lo = (mid << 32) | (p00 & 0xFFFFFFFFu);
#endif
}

static inline void philox_block(uint64_t c0, uint64_t c1, uint64_t c2, uint64_t c3,
                                uint64_t k0, uint64_t k1, uint64_t out[4])
{
    for (int round = 0; round < 10; round++) {
        if (round) {
            k0 += PHILOX_W0;
            k1 += PHILOX_W1;
        }
        uint64_t hi0, lo0, hi1, lo1;
        mul_hilo(PHILOX_M0, c0, &hi0, &lo0);
        mul_hilo(PHILOX_M1, c2, &hi1, &lo1);
        uint64_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
        c0 = n0;
        c1 = lo1;
        c2 = n2;
        c3 = lo0;
    }
    out[0] = c0;
    out[1] = c1;
    out[2] = c2;
    out[3] = c3;
}

void dtnn_philox4x64_10(const uint64_t ctr[4], const uint64_t key[2], uint64_t out[4])
{
    philox_block(ctr[0], ctr[1], ctr[2], ctr[3], key[0], key[1], out);
}

/* blocks of 4 words per OpenMP chunk, and the word count below which one thread runs */
#define RNG_PAR_IF(n) if ((n) >= DTNN_OMP_MIN_WORK)

void dtnn_rng_u64(uint64_t key0, uint64_t key1, uint64_t c1, uint64_t c2, uint64_t c3,
                  int64_t start, int64_t n, uint64_t *out)
{
    if (n <= 0)
        return;
    int64_t first = start / 4, last = (start + n - 1) / 4;
#pragma omp parallel for schedule(static) RNG_PAR_IF(n)
    for (int64_t b = first; b <= last; b++) {
        uint64_t w[4];
        philox_block((uint64_t)b, c1, c2, c3, key0, key1, w);
        for (int j = 0; j < 4; j++) {
            int64_t q = 4 * b + j - start;
            if (q >= 0 && q < n)
                out[q] = w[j];
        }
    }
}

void dtnn_rng_uniform_f32(uint64_t key0, uint64_t key1, uint64_t c1, uint64_t c2,
                          uint64_t c3, int64_t start, int64_t n, float *out)
{
    if (n <= 0)
        return;
    const float scale = 1.0f / 16777216.0f;  /* 2^-24 */
    int64_t first = start / 8, last = (start + n - 1) / 8;
#pragma omp parallel for schedule(static) RNG_PAR_IF(n)
    for (int64_t b = first; b <= last; b++) {
        uint64_t w[4];
        philox_block((uint64_t)b, c1, c2, c3, key0, key1, w);
        for (int h = 0; h < 8; h++) {
            int64_t q = 8 * b + h - start;
            if (q >= 0 && q < n) {
                uint32_t half = (uint32_t)(w[h >> 1] >> (32 * (h & 1)));
                out[q] = (float)(half >> 8) * scale;
            }
        }
    }
}

static inline int lowest_bit(uint64_t x)
{
#if defined(__GNUC__) || defined(__clang__)
    return __builtin_ctzll(x);
#elif defined(_MSC_VER) && defined(_M_X64)
    unsigned long i;
    _BitScanForward64(&i, x);
    return (int)i;
#else
    int i = 0;
    while (!(x & 1)) {
        x >>= 1;
        i++;
    }
    return i;
#endif
}

int dtnn_rng_sample_sorted(uint64_t key0, uint64_t key1, uint64_t c1, uint64_t c2,
                           uint64_t c3, int64_t n, int64_t k, int32_t *out)
{
    if (k <= 0)
        return 0;
    if (k >= n) {
        for (int64_t i = 0; i < n; i++)
            out[i] = (int32_t)i;
        return 0;
    }
    /* draw the smaller side: at most n/2 distinct values, so duplicates stay rare */
    const int complement = 2 * k > n;
    const int64_t m = complement ? n - k : k;
    const int64_t nwords = (n + 63) / 64;
    uint64_t *bits = (uint64_t *)calloc((size_t)nwords, sizeof(uint64_t));
    /* words are generated in chunks (the big ones on several threads), used in order */
    const int64_t chunk_cap = 1 << 16;
    int64_t chunk = m + m / 8 + 64;
    if (chunk > chunk_cap)
        chunk = chunk_cap;
    uint64_t *words = (uint64_t *)malloc((size_t)chunk * sizeof(uint64_t));
    if (!bits || !words) {
        free(bits);
        free(words);
        return -1;
    }
    const uint64_t un = (uint64_t)n;
    const uint64_t reject_below = (0 - un) % un;   /* 2^64 mod n */
    int64_t got = 0, pos = 0;
    while (got < m) {
        dtnn_rng_u64(key0, key1, c1, c2, c3, pos, chunk, words);
        pos += chunk;
        for (int64_t i = 0; i < chunk && got < m; i++) {
            uint64_t hi, lo;
            mul_hilo(words[i], un, &hi, &lo);
            if (lo < reject_below)
                continue;
            uint64_t bit = 1ULL << (hi & 63);
            if (bits[hi >> 6] & bit)
                continue;
            bits[hi >> 6] |= bit;
            got++;
        }
    }
    /* out[] in increasing order from the bit map.  Most words hold 0, 1 or 2 bits
     * (about 0.6 on average at k = n / 100): two stores per word, whose count advances
     * only for bits that exist, keep the loop free of unpredictable branches; the few
     * words with more bits take the loop.  The stores run one slot ahead, so they go
     * to a scratch array of k + 2 (the word buffer when large enough). */
    int32_t *dst = (chunk * 2 >= k + 2) ? (int32_t *)words : (int32_t *)malloc((size_t)(k + 2) * sizeof(int32_t));
    if (!dst) {
        free(bits);
        free(words);
        return -1;
    }
    int64_t c = 0;
    for (int64_t w = 0; w < nwords; w++) {
        uint64_t x = complement ? ~bits[w] : bits[w];
        if (w == nwords - 1 && (n & 63))
            x &= (1ULL << (n & 63)) - 1;   /* no bits past n */
        const int32_t base = (int32_t)(64 * w);
        dst[c] = base + lowest_bit(x | (1ULL << 63));
        c += (x != 0);
        x &= x - 1;
        dst[c] = base + lowest_bit(x | (1ULL << 63));
        c += (x != 0);
        x &= x - 1;
        while (x) {
            dst[c++] = base + lowest_bit(x);
            x &= x - 1;
        }
    }
    memcpy(out, dst, (size_t)k * sizeof(int32_t));
    if (dst != (int32_t *)words)
        free(dst);
    free(bits);
    free(words);
    return 0;
}
