/*
 * What the compression kernels' source files share (csrc/compress.c, csrc/compress_topk.c):
 * floating-point contraction off (the float32 arithmetic matches the numpy twins bit for
 * bit even with -march=native), the run-time ISA dispatch (every streaming kernel is a
 * range body compiled once per ISA and picked by dtnn_isa_active()) and the block loop.
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

#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(_MSC_VER)
#define RESTRICT __restrict
#else
#define RESTRICT restrict
#endif

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

#endif /* DTNN_COMPRESS_IMPL_H */
