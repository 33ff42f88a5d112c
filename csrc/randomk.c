/*
 * random-k's encode with error feedback in one pass: see randomk.h.
 *
 * Why C: in numpy it was a Python loop of blocks (res += x, x = 0, while both are in
 * L2), then a gather of the k values over the whole residual (cache misses on cold
 * lines) and, for the decode, a searchsorted mapping of the indices into the flat
 * vector.  Here each block is added, cleared and has its sampled entries taken and
 * zeroed while it is in cache, and the flat indices come out of the same walk.  The
 * arithmetic is the same single float add per element, so the bits are those of the
 * numpy form (tests/compress/test_randomk_fused.py).
 */
#include <stdint.h>
#include <string.h>

#include "dtnn_kernels.h"
#include "randomk.h"

/* elements per block: res and x blocks (2 x 64 KiB) stay in L2 between the passes */
#define RK_BLOCK 16384

int dtnn_rk_encode(float *res, float *flat, const int64_t *starts, const int64_t *lens,
                   int64_t nranges, const int32_t *idx, int64_t k, float *payload,
                   int32_t *flat_idx, int move)
{
    int64_t i, j = 0, u = 0;  /* u: the unit offset of the current range */
    for (i = 0; i < nranges; i++) {
        float *DTNN_RESTRICT x = flat + starts[i];
        const int64_t n = lens[i];
        int64_t b;
        for (b = 0; b < n; b += RK_BLOCK) {
            const int64_t e = b + RK_BLOCK < n ? b + RK_BLOCK : n;
            float *DTNN_RESTRICT r = res + u;
            int64_t c;
            for (c = b; c < e; c++)
                r[c] += x[c];
            if (move)
                memset(x + b, 0, sizeof(float) * (size_t)(e - b));
            for (; j < k && (int64_t)idx[j] < u + e; j++) {
                const int64_t t = (int64_t)idx[j] - u;
                if (t < b || (j && idx[j] <= idx[j - 1]))
                    return -1;
                payload[j] = r[t];
                r[t] = 0.0f;
                flat_idx[j] = (int32_t)(starts[i] + t);
            }
        }
        u += n;
    }
    return j == k ? 0 : -1;
}
