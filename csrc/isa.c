/* Run-time ISA level (see dtnn_isa.h). */
#include "dtnn_isa.h"

#include <stdlib.h>
#include <string.h>

static int cpu_level = -1;
static int cap_level = -2;   /* -2: not read yet; -1: no cap */

int dtnn_isa_cpu(void)
{
    if (cpu_level < 0) {
        int level = DTNN_ISA_GENERIC;
#if DTNN_X86
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
            && __builtin_cpu_supports("f16c")) {
            level = DTNN_ISA_AVX2;
            if (__builtin_cpu_supports("avx512f"))
                level = DTNN_ISA_AVX512;
        }
#endif
        cpu_level = level;
    }
    return cpu_level;
}

static int env_cap(void)
{
    /* anything else (unset, "auto", a typo: dtnn warns about those) is no cap */
    const char *s = getenv("DTNN_ISA");
    if (s == NULL)
        return -1;
    if (strcmp(s, "avx512") == 0)
        return DTNN_ISA_AVX512;
    if (strcmp(s, "avx2") == 0)
        return DTNN_ISA_AVX2;
    /* "numpy": the compiled kernels are not called at all */
    if (strcmp(s, "generic") == 0 || strcmp(s, "numpy") == 0)
        return DTNN_ISA_GENERIC;
    return -1;
}

int dtnn_isa_active(void)
{
    int cpu = dtnn_isa_cpu();
    if (cap_level == -2)
        cap_level = env_cap();
    return (cap_level >= 0 && cap_level < cpu) ? cap_level : cpu;
}

void dtnn_isa_set_cap(int level)
{
    cap_level = level < 0 ? env_cap() : level;
}

int dtnn_isa_pick(int isa)
{
    if (isa < 0)
        return dtnn_isa_active();
    return isa <= dtnn_isa_cpu() ? isa : -1;
}
