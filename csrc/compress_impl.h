/*
 * What the compression kernels' source files share (csrc/compress.c, csrc/compress_topk.c,
 * csrc/compress_qring.c):
 * floating-point contraction off (the float32 arithmetic matches the numpy twins bit for
 * bit even with -march=native), the run-time ISA dispatch (every streaming kernel is a
 * range body compiled once per ISA and picked by dtnn_isa_active()), the block and chunk
 * loops, the RNG, and the kernels of compress.c that compress_qring.c also runs.
 * Private to those files: include it first, before any code.
 */
#ifndef DTNN_COMPRESS_IMPL_H
#define DTNN_COMPRESS_IMPL_H
#include "dtnn_exact_fp.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compress.h"
#include "dtnn_isa.h"
#include "dtnn_kernels.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* the project's restrict spelling (dtnn_kernels.h), under this file's short name */
#define RESTRICT DTNN_RESTRICT

/* a word of 4 bytes read as little endian (byte t in bits 8t..8t+7) */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define CX_LE32(w) __builtin_bswap32(w)
#else
#define CX_LE32(w) (w)
#endif

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
 * AVX2 (+F16C for the half conversions), picked at run time (dtnn_isa_active()).  The wheel keeps
 * running on any x86-64, and the vectoriser gets 256-bit registers, 32-bit integer
 * multiplies (the RNG) and roundings where the CPU has them. */
#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define CX_X86 1
#include <immintrin.h>
#define CX_AVX2 __attribute__((target("avx2,f16c")))
/* AVX-512 with byte/word (BW), 256-bit forms (VL) and DQ: the packing kernels move
 * bytes.  GCC is told to prefer 512-bit vectors (it otherwise keeps 256 bits for
 * some tunings); the source is the same range body, so the bits are the same. */
#if defined(__clang__)
#define CX_AVX512 __attribute__((target("avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq")))
#else
#define CX_AVX512 __attribute__((target("avx2,f16c,avx512f,avx512bw,avx512vl,avx512dq," \
                                        "prefer-vector-width=512")))
#endif
/* the CPU has AVX2 + F16C and DTNN_ISA does not cap it off (csrc/dtnn_isa.h) */
static inline int cx_has_avx2(void) { return dtnn_isa_active() >= DTNN_ISA_AVX2; }
/* AVX-512 F+BW+VL+DQ and DTNN_ISA allows AVX-512 (the CPU check is cached) */
static inline int cx_has_avx512(void)
{
    static int cpu = -1;
    if (cpu < 0)
        cpu = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
              && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    return cpu && dtnn_isa_active() >= DTNN_ISA_AVX512;
}
#else
#define CX_X86 0
static inline int cx_has_avx2(void) { return 0; }
static inline int cx_has_avx512(void) { return 0; }
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
/* the same for a body returning a value (reductions) */
#define CX_CLONES_R(type, name, params, args)                            \
    static type name##_gen params { return name##_body args; }           \
    CX_AVX2 static type name##_avx2 params { return name##_body args; }  \
    static type name##_run params                                        \
    {                                                                    \
        return cx_has_avx2() ? name##_avx2 args : name##_gen args;       \
    }
/* three clones (baseline, AVX2, AVX-512) for the kernels that gain from 16 lanes:
 * the RNG's 32-bit multiplies and the 2- and 1-bit unpacking.  The int8 decodes stay
 * at two (measured no faster, sometimes slower, at 512 bits on this family). */
#define CX_CLONES3(name, params, args)                                   \
    static void name##_gen params { name##_body args; }                  \
    CX_AVX2 static void name##_avx2 params { name##_body args; }         \
    CX_AVX512 static void name##_avx512 params { name##_body args; }     \
    static void name##_run params                                        \
    {                                                                    \
        if (cx_has_avx512())                                             \
            name##_avx512 args;                                          \
        else if (cx_has_avx2())                                          \
            name##_avx2 args;                                            \
        else                                                             \
            name##_gen args;                                             \
    }
#define CX_CLONES3_R(type, name, params, args)                           \
    static type name##_gen params { return name##_body args; }           \
    CX_AVX2 static type name##_avx2 params { return name##_body args; }  \
    CX_AVX512 static type name##_avx512 params { return name##_body args; } \
    static type name##_run params                                        \
    {                                                                    \
        return cx_has_avx512() ? name##_avx512 args                      \
             : cx_has_avx2() ? name##_avx2 args : name##_gen args;       \
    }
#else
#define CX_CLONES(name, params, args)                                    \
    static void name##_run params { name##_body args; }
#define CX_CLONES_R(type, name, params, args)                            \
    static type name##_run params { return name##_body args; }
#define CX_CLONES3 CX_CLONES
#define CX_CLONES3_R CX_CLONES_R
#endif

/* run body(s, e) over [0, n) in blocks, in parallel if large */
#define CX_BLOCKS(n, CALL)                                                           \
    do {                                                                             \
        const int64_t nb_ = ((n) + DTNN_CX_BLOCK - 1) / DTNN_CX_BLOCK;               \
        int64_t b_;                                                                  \
        (void)cx_has_avx2();                                                         \
        (void)cx_has_avx512();                                                       \
        _Pragma("omp parallel for schedule(static) if ((n) >= DTNN_CX_MIN_WORK)")    \
        for (b_ = 0; b_ < nb_; ++b_) {                                               \
            const int64_t s = b_ * DTNN_CX_BLOCK;                                    \
            const int64_t e = (s + DTNN_CX_BLOCK < (n)) ? s + DTNN_CX_BLOCK : (n);   \
            CALL;                                                                    \
        }                                                                            \
    } while (0)

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


/* ---------------------------------------------------------------- RNG
 * u(i) = hash(i) >> 8 times 2^-24.  The 64-bit key is mixed once per call (the
 * splitmix64 finaliser) into two 32-bit halves; the per-element hash is one
 * xorshift-multiply finaliser (2 multiplies) with k0 xored into the counter and k1
 * into the middle, so all 64 key bits select the stream.  For a fixed i the hash is
 * a bijection of the counter, so over keys u(i) is exactly uniform on the 2^-24 grid:
 * that is what makes stochastic rounding unbiased.  The counter is uint32 so the
 * AVX2 clones vectorise it as 8 lanes (indices >= 2^32 wrap, like the twin). */
static inline void cx_stream(uint64_t key, uint32_t *k0, uint32_t *k1)
{
    uint64_t z = key + 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    z ^= z >> 31;
    *k0 = (uint32_t)z;
    *k1 = (uint32_t)(z >> 32);
}

static inline float uniform_at(uint32_t i, uint32_t k0, uint32_t k1)
{
    uint32_t h = i ^ k0;
    h ^= h >> 16;
    h *= 0x7feb352dU;
    h ^= k1;
    h ^= h >> 15;
    h *= 0x846ca68bU;
    h ^= h >> 16;
    return (float)(int32_t)(h >> 8) * (1.0f / 16777216.0f);
}

/* 1 + sign bit = the code of a kept element: x < 0 gives 2; -0.0 and NaN are never
 * kept (u < 0 and u < NaN are false), so the sign bit decides exactly like x < 0 */
static inline uint32_t tern_code(float xv, float inv, uint32_t i, uint32_t k0, uint32_t k1)
{
    const uint32_t keep = uniform_at(i, k0, k1) < fabsf(xv) * inv;
    return (0u - keep) & (1u + (f2u(xv) >> 31));
}

/* ---------------------------------------------------------------- shared kernels
 * compress_qring.c's hop runs the same range bodies as compress.c's kernels: cx_<name>
 * is the run-time dispatcher of compress.c's clone set <name> (or its function <name>),
 * non-static but hidden (not exported from the module).  CX_SHARED / CX_SHARED_R define
 * it after the clone set; compress.c's own callers keep the static name##_run. */
#if defined(__GNUC__) || defined(__clang__)
#define CX_INTERNAL __attribute__((visibility("hidden")))
#else
#define CX_INTERNAL
#endif
#define CX_SHARED(CLONES, name, params, args)                                        \
    CLONES(name, params, args)                                                       \
    CX_INTERNAL void cx_##name params { name##_run args; }
#define CX_SHARED_R(CLONES, type, name, params, args)                                \
    CLONES(type, name, params, args)                                                 \
    CX_INTERNAL type cx_##name params { return name##_run args; }

/* kind 0: sum of squares, 1: max |x| (exact), 2: sum |x| of p[0 .. m) (one block) */
CX_INTERNAL double cx_block_norm(const float *p, int64_t m, int kind);
/* sum |p[j]|; add_abs: e[j] += x[j], then sum |e[j]| (j < m) */
CX_INTERNAL double cx_sum_abs(const float *RESTRICT p, int64_t m);
CX_INTERNAL double cx_add_abs(const float *RESTRICT x, float *RESTRICT e, int64_t m);
/* int8 codes of x[0 .. m) (element i0 of the stream): quantize_i8's body */
CX_INTERNAL void cx_q8(const float *RESTRICT x, int8_t *RESTRICT q, int64_t m_, uint32_t i0,
                       float inv, float levels, uint32_t k0, uint32_t k1, int stochastic);
/* nb TernGrad bytes from x[0 .. 4 nb) (element e0 of the stream) */
CX_INTERNAL void cx_tq(const float *RESTRICT x, uint8_t *RESTRICT packed, int64_t nb,
                       uint32_t e0, float inv, uint32_t k0, uint32_t k1);
/* nb sign bytes from c[0 .. 8 nb) (ef: c -= sent value) */
CX_INTERNAL void cx_sp(float *RESTRICT c, uint8_t *RESTRICT bits, int64_t nb, float value,
                       int ef);
/* windowed decodes (decode_window's pieces): m int8 codes, mode 0 out = v, 1 out += v,
 * 2 out = base + v; and global elements [gs, ge) of one TernGrad (kind 1) / sign (2)
 * chunk into out[gs - s0 ..) */
CX_INTERNAL void cx_dq8w(const int8_t *RESTRICT q, float *RESTRICT out,
                         const float *RESTRICT base, int64_t m, float f, int mode);
CX_INTERNAL void cx_window_packed(int kind, const uint8_t *codes, int64_t gs, int64_t ge,
                                  float value, int64_t s0, const float *base, float *out,
                                  int mode);

#endif /* DTNN_COMPRESS_IMPL_H */
