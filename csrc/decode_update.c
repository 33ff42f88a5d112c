/*
 * The final decode of a quantised-ring chunk fused into the SGD update: see
 * decode_update.h.  Why: after the ring, the decode writes the averaged gradient
 * (2.37 M floats for vgg11_bn w0.5, 9.5 MB) and the update reads it right back; here a
 * block of DU_BLOCK elements is decoded into a stack buffer (L1) by the windowed
 * decode (dtnn_cx_decode_window, mode 0: out = alpha * v) and updated from there by
 * the optimizer's own range body (dtnn_sgd_range_f32).  Both are elementwise, so the
 * blocking does not change a bit.
 */
#include "dtnn_exact_fp.h"

#include <stddef.h>
#include <stdint.h>

#include "compress.h"
#include "decode_update.h"
#include "dtnn_kernels.h"
#include "optim.h"

/* 16 KiB of decoded gradient per block: in L1 with the block's p / buf lines */
#define DU_BLOCK 4096

void dtnn_decode_sgd_pieces(int kind, const uint8_t *payload, int64_t n, int64_t chunk,
                            double alpha, double levels, int64_t np, const int64_t *bounds,
                            const int64_t *offs, float *p, const float *mask, float *buf,
                            float neg_lr, int has_wd, float wd, int has_momentum, float mom,
                            int has_dampening, float one_minus_damp, int nesterov, int first)
{
    const int64_t nc = (n + chunk - 1) / chunk;
    const float *scales = (const float *)payload;
    const uint8_t *codes = payload + 4 * nc;
    int64_t k;
    for (k = 0; k < np; ++k) {
        const int64_t s0 = bounds[k], m = bounds[k + 1] - s0;
        const int64_t nb = (m + DU_BLOCK - 1) / DU_BLOCK;
        float *pk = p + offs[k];
        const float *mk = mask + offs[k];
        float *bk = buf != NULL ? buf + offs[k] : NULL;
        int64_t b;
        if (m <= 0)
            continue;
#pragma omp parallel for schedule(static) if (m >= 4 * DTNN_OMP_MIN_WORK)
        for (b = 0; b < nb; ++b) {
            float g[DU_BLOCK];
            const int64_t lo = b * DU_BLOCK, hi = lo + DU_BLOCK < m ? lo + DU_BLOCK : m;
            dtnn_cx_decode_window(kind, codes, scales, chunk, alpha, levels, s0 + lo, s0 + hi,
                                  NULL, g, 0);
            dtnn_sgd_range_f32(pk + lo, g, mk + lo, bk != NULL ? bk + lo : NULL, 0, hi - lo,
                               neg_lr, has_wd, wd, has_momentum, mom, has_dampening,
                               one_minus_damp, nesterov, first);
        }
    }
}
