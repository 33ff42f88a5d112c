/*
 * Run-time choice of instruction set for the compiled kernels.
 *
 * The extensions are built for the baseline x86-64 ISA (SSE2), so the same binary runs
 * on any x86-64 CPU; kernels with hand-vectorised paths compile them with per-function
 * target attributes and pick one at run time with dtnn_isa_active():
 *
 *   DTNN_ISA_AVX512  AVX-512F (+ AVX2, FMA)
 *   DTNN_ISA_AVX2    AVX2 + FMA + F16C
 *   DTNN_ISA_GENERIC the baseline (what the compiler makes of plain C)
 *
 * The active level is the best level this CPU and OS run, capped by the environment
 * variable DTNN_ISA (avx512 | avx2 | generic; read once, on first use) or by
 * dtnn_isa_set_cap() (tests, benchmarks).  Every extension module links its own copy
 * of csrc/isa.c, so a cap set from Python goes to each module (dtnn._kernels.isa).
 */
#ifndef DTNN_ISA_H
#define DTNN_ISA_H

#define DTNN_ISA_GENERIC 0
#define DTNN_ISA_AVX2 1
#define DTNN_ISA_AVX512 2

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define DTNN_X86 1
#define DTNN_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#define DTNN_TARGET_AVX512 __attribute__((target("avx512f,avx2,fma,f16c")))
#else
#define DTNN_X86 0
#endif

/* the best level this CPU (and OS) can run, among those compiled in */
int dtnn_isa_cpu(void);
/* the level kernels use now: min(dtnn_isa_cpu(), cap) */
int dtnn_isa_active(void);
/* cap the level (DTNN_ISA_*), or -1 to go back to DTNN_ISA from the environment */
void dtnn_isa_set_cap(int level);
/* the level an explicit request runs at: isa < 0 means dtnn_isa_active(); a level
 * this CPU cannot run gives -1 */
int dtnn_isa_pick(int isa);

#endif /* DTNN_ISA_H */
