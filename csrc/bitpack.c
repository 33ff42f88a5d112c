/*
 * Bit-packing kernels (see bitpack.h for the layout and
 * dtnn/compress/bitpack_twins.py for the numpy twins they are tested against byte for
 * byte).
 *
 * Eight elements of B bits make one 8B-bit word (at most 64 bits), stored as B
 * bytes, so a group never straddles another group's bytes and blocks of whole groups
 * can be packed by different threads.  The per-group loops are instantiated for each
 * B (a switch over always-inline bodies) so shifts and byte counts are constants;
 * for B = 1, 2, 4 unpacking runs byte by byte (8/B whole codes per byte), which
 * vectorises, and B = 8 is a copy.
 * Floating-point contraction is off: the fused dequantiser must round exactly like
 * "unpack, then out += (float)q * f" in numpy.
 */
#include "dtnn_exact_fp.h"
#include <string.h>

#include "bitpack.h"
#include "dtnn_kernels.h"

#if defined(__BYTE_ORDER__) && defined(__ORDER_LITTLE_ENDIAN__) && \
    __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define BP_LITTLE_ENDIAN 1
#elif defined(_M_X64) || defined(_M_IX86) || defined(_M_ARM64)
#define BP_LITTLE_ENDIAN 1
#else
#define BP_LITTLE_ENDIAN 0
#endif

#ifdef _OPENMP
#include <omp.h>
#endif

/* the project's restrict spelling (dtnn_kernels.h), under this file's short name */
#define RESTRICT DTNN_RESTRICT

#if defined(__GNUC__) || defined(__clang__)
#define BP_INLINE static inline __attribute__((always_inline))
#else
#define BP_INLINE static inline
#endif

int64_t dtnn_bp_packed_size(int64_t n, int bits)
{
    return (n * (int64_t)bits + 7) / 8;
}

/* ---------------------------------------------------------------- one group */
/* the codes of m <= 8 levels in one little-endian word */
BP_INLINE uint64_t bp_word(const int8_t *RESTRICT q, int m, const int bits)
{
    const uint64_t mask = ((uint64_t)1 << bits) - 1;
    uint64_t w = 0;
    int j;
    for (j = 0; j < m; ++j)
        w |= ((uint64_t)(uint8_t)q[j] & mask) << (j * bits);
    return w;
}

BP_INLINE void bp_put(uint8_t *RESTRICT p, uint64_t w, int nbytes)
{
    int b;
    for (b = 0; b < nbytes; ++b)
        p[b] = (uint8_t)(w >> (8 * b));
}

BP_INLINE uint64_t bp_get(const uint8_t *RESTRICT p, int nbytes)
{
    uint64_t w = 0;
    int b;
    for (b = 0; b < nbytes; ++b)
        w |= (uint64_t)p[b] << (8 * b);
    return w;
}

/* the sign-extended code j of w */
BP_INLINE int8_t bp_level(uint64_t w, int j, const int bits)
{
    const uint32_t mask = ((uint32_t)1 << bits) - 1;
    const uint32_t h = (uint32_t)1 << (bits - 1);
    const uint32_t c = (uint32_t)(w >> (j * bits)) & mask;
    return (int8_t)((int32_t)(c ^ h) - (int32_t)h);
}

/* ---------------------------------------------------------------- groups [g0, g1) */
BP_INLINE void pack_groups(const int8_t *RESTRICT q, uint8_t *RESTRICT p, int64_t g0,
                           int64_t g1, const int bits)
{
    int64_t g;
    for (g = g0; g < g1; ++g)
        bp_put(p + g * bits, bp_word(q + 8 * g, 8, bits), bits);
}

/* dst[8 (g - g0) + j] = level j of group g */
BP_INLINE void unpack_groups(const uint8_t *RESTRICT p, int8_t *RESTRICT dst, int64_t g0,
                             int64_t g1, const int bits)
{
    int64_t g;
    int j;
    for (g = g0; g < g1; ++g) {
#if BP_LITTLE_ENDIAN
        /* one unaligned 8-byte load where the range's groups still hold 8 bytes; the
         * bytes past the group's B are masked off */
        uint64_t w;
        if ((g1 - g) * bits >= 8) {
            memcpy(&w, p + g * bits, sizeof w);
            w &= ((uint64_t)1 << (8 * bits)) - 1;
        } else {
            w = bp_get(p + g * bits, bits);
        }
#else
        const uint64_t w = bp_get(p + g * bits, bits);
#endif
        int8_t *d = dst + 8 * (g - g0);
        for (j = 0; j < 8; ++j)
            d[j] = bp_level(w, j, bits);
    }
}

/* B in {1, 2, 4, 8}: whole elements per byte, so a byte loop the compiler vectorises */
BP_INLINE void unpack_bytes(const uint8_t *RESTRICT p, int8_t *RESTRICT dst, int64_t g0,
                            int64_t g1, const int bits)
{
    const int per = 8 / bits;
    int64_t j;
    int k;
    for (j = g0 * bits; j < g1 * bits; ++j) {
        const uint32_t v = p[j];
        int8_t *d = dst + (j - g0 * bits) * per;
        for (k = 0; k < per; ++k)  /* code k to the top of the byte, then sign-extend */
            d[k] = (int8_t)((int32_t)(int8_t)(uint8_t)(v << (8 - bits * (k + 1))) >> (8 - bits));
    }
}

#define BP_DISPATCH(bits, F, ...)            \
    switch (bits) {                          \
    case 1: F(__VA_ARGS__, 1); break;        \
    case 2: F(__VA_ARGS__, 2); break;        \
    case 3: F(__VA_ARGS__, 3); break;        \
    case 4: F(__VA_ARGS__, 4); break;        \
    case 5: F(__VA_ARGS__, 5); break;        \
    case 6: F(__VA_ARGS__, 6); break;        \
    case 7: F(__VA_ARGS__, 7); break;        \
    default: F(__VA_ARGS__, 8); break;       \
    }

/* ---------------------------------------------------------------- blocks [s, e)
 * s is a multiple of 8; only the last block (e == n) may end inside a group. */
static void pack_block(const int8_t *RESTRICT q, uint8_t *RESTRICT p, int64_t s, int64_t e,
                       int bits)
{
    const int64_t g0 = s / 8, g1 = e / 8;
    if (bits == 8) {  /* the two's-complement bytes themselves */
        memcpy(p + s, q + s, (size_t)(e - s));
        return;
    }
    BP_DISPATCH(bits, pack_groups, q, p, g0, g1)
    if (e > 8 * g1) {
        const int m = (int)(e - 8 * g1);
        bp_put(p + g1 * bits, bp_word(q + 8 * g1, m, bits), (m * bits + 7) / 8);
    }
}

/* dst[i - s] = level i, for i in [s, e) */
static void unpack_block(const uint8_t *RESTRICT p, int8_t *RESTRICT dst, int64_t s,
                         int64_t e, int bits)
{
    const int64_t g0 = s / 8, g1 = e / 8;
    if (bits == 1 || bits == 2 || bits == 4 || bits == 8) {
        switch (bits) {
        case 1: unpack_bytes(p, dst, g0, g1, 1); break;
        case 2: unpack_bytes(p, dst, g0, g1, 2); break;
        case 4: unpack_bytes(p, dst, g0, g1, 4); break;
        default: unpack_bytes(p, dst, g0, g1, 8); break;
        }
    } else {
        BP_DISPATCH(bits, unpack_groups, p, dst, g0, g1)
    }
    if (e > 8 * g1) {
        const int m = (int)(e - 8 * g1);
        const uint64_t w = bp_get(p + g1 * bits, (m * bits + 7) / 8);
        int j;
        for (j = 0; j < m; ++j)
            dst[8 * (g1 - g0) + j] = bp_level(w, j, bits);
    }
}

static void dq_block(const uint8_t *RESTRICT p, float *RESTRICT out, int64_t s, int64_t e,
                     int bits, int64_t chunk, const float *RESTRICT scales, double alpha,
                     double levels, int acc)
{
    int8_t lv[DTNN_BP_BLOCK];
    int64_t cs = s, i;
    unpack_block(p, lv, s, e, bits);
    while (cs < e) {
        const int64_t ck = cs / chunk;
        const int64_t ce = (ck + 1) * chunk < e ? (ck + 1) * chunk : e;
        const float f = (float)((double)scales[ck] * alpha / levels);
        if (acc)
            for (i = cs; i < ce; ++i)
                out[i] += (float)lv[i - s] * f;
        else
            for (i = cs; i < ce; ++i)
                out[i] = (float)lv[i - s] * f;
        cs = ce;
    }
}

/* ---------------------------------------------------------------- entry points */
#define BP_BLOCKS(n, CALL)                                                           \
    do {                                                                             \
        const int64_t nb_ = ((n) + DTNN_BP_BLOCK - 1) / DTNN_BP_BLOCK;               \
        int64_t b_;                                                                  \
        _Pragma("omp parallel for schedule(static) if ((n) >= DTNN_BP_MIN_WORK)")    \
        for (b_ = 0; b_ < nb_; ++b_) {                                               \
            const int64_t s = b_ * DTNN_BP_BLOCK;                                    \
            const int64_t e = (s + DTNN_BP_BLOCK < (n)) ? s + DTNN_BP_BLOCK : (n);   \
            CALL;                                                                    \
        }                                                                            \
    } while (0)

void dtnn_bp_pack(const int8_t *RESTRICT q, uint8_t *RESTRICT packed, int64_t n, int bits)
{
    BP_BLOCKS(n, pack_block(q, packed, s, e, bits));
}

void dtnn_bp_unpack(const uint8_t *RESTRICT packed, int8_t *RESTRICT q, int64_t n, int bits)
{
    BP_BLOCKS(n, unpack_block(packed, q + s, s, e, bits));
}

void dtnn_bp_dequantize(const uint8_t *RESTRICT packed, float *RESTRICT out, int64_t n,
                        int bits, int64_t chunk, const float *RESTRICT scales, double alpha,
                        double levels, int accumulate)
{
    BP_BLOCKS(n, dq_block(packed, out, s, e, bits, chunk, scales, alpha, levels, accumulate));
}
