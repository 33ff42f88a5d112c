/*
 * Fused SGD and Adam updates: see optim.h.  Why C: the numpy form of SGD with
 * Nesterov momentum and weight decay is 9 passes over the parameters and two scratch
 * vectors (2.8 ms per step for simplecnn's 402k parameters in the training loop,
 * benchmarks/results/scaling.md); here it is one pass that reads p, g, mask, buf and
 * writes p, buf.  The options are hoisted out of the loop: each combination is its own
 * inlined copy of the loop body with constant flags, so every copy vectorises (Adam's
 * sqrtf needs -fno-math-errno, set for this module in setup.py).
 */
/* the twins round after every operation: an a*b+c fused into one FMA would not */
#include "dtnn_exact_fp.h"

#include <math.h>
#include <stdint.h>

#include "dtnn_kernels.h"
#include "optim.h"

#ifdef _OPENMP
#include <omp.h>
#endif

/* below this many elements a second thread costs more than it saves */
#define OPT_PAR_IF(n) if ((n) >= 4 * DTNN_OMP_MIN_WORK)
#define OPT_BLOCK 8192

static inline void sgd_block(float *DTNN_RESTRICT p, const float *DTNN_RESTRICT g,
                             const float *DTNN_RESTRICT mask, float *DTNN_RESTRICT buf,
                             int64_t lo, int64_t hi, const float neg_lr, const int has_wd,
                             const float wd, const int has_momentum, const float mom,
                             const int has_dampening, const float one_minus_damp,
                             const int nesterov, const int first)
{
    int64_t i;
#pragma omp simd
    for (i = lo; i < hi; ++i) {
        float d = g[i];
        if (has_wd)
            d = (p[i] * mask[i]) * wd + d;
        if (has_momentum) {
            float b;
            if (first)
                b = d;
            else if (has_dampening)
                b = buf[i] * mom + d * one_minus_damp;
            else
                b = buf[i] * mom + d;
            buf[i] = b;
            d = nesterov ? b * mom + d : b;
        }
        p[i] = p[i] + d * neg_lr;
    }
}

/* one specialisation per flag combination (the flags are literals at each call) */
#define SGD_CASE(WD, MOM, DAMP, NEST, FIRST)                                           \
    sgd_block(p, g, mask, buf, lo, hi, neg_lr, WD, wd, MOM, mom, DAMP, one_minus_damp, \
              NEST, FIRST)

static void sgd_range(float *p, const float *g, const float *mask, float *buf, int64_t lo,
                      int64_t hi, float neg_lr, int has_wd, float wd, int has_momentum,
                      float mom, int has_dampening, float one_minus_damp, int nesterov,
                      int first)
{
    if (!has_momentum) {
        if (has_wd) SGD_CASE(1, 0, 0, 0, 0);
        else SGD_CASE(0, 0, 0, 0, 0);
        return;
    }
    if (first) {
        if (has_wd) {
            if (nesterov) SGD_CASE(1, 1, 0, 1, 1);
            else SGD_CASE(1, 1, 0, 0, 1);
        } else {
            if (nesterov) SGD_CASE(0, 1, 0, 1, 1);
            else SGD_CASE(0, 1, 0, 0, 1);
        }
        return;
    }
    if (has_wd) {
        if (nesterov) SGD_CASE(1, 1, 0, 1, 0);
        else if (has_dampening) SGD_CASE(1, 1, 1, 0, 0);
        else SGD_CASE(1, 1, 0, 0, 0);
    } else {
        if (nesterov) SGD_CASE(0, 1, 0, 1, 0);
        else if (has_dampening) SGD_CASE(0, 1, 1, 0, 0);
        else SGD_CASE(0, 1, 0, 0, 0);
    }
}

void dtnn_sgd_range_f32(float *p, const float *g, const float *mask, float *buf, int64_t lo,
                        int64_t hi, float neg_lr, int has_wd, float wd, int has_momentum,
                        float mom, int has_dampening, float one_minus_damp, int nesterov,
                        int first)
{
    sgd_range(p, g, mask, buf, lo, hi, neg_lr, has_wd, wd, has_momentum, mom, has_dampening,
              one_minus_damp, nesterov, first);
}

void dtnn_sgd_update_f32(float *p, const float *g, const float *mask, float *buf,
                         int64_t n, float neg_lr, int has_wd, float wd,
                         int has_momentum, float mom, int has_dampening,
                         float one_minus_damp, int nesterov, int first)
{
    const int64_t nb = (n + OPT_BLOCK - 1) / OPT_BLOCK;
    int64_t b;
#pragma omp parallel for schedule(static) OPT_PAR_IF(n)
    for (b = 0; b < nb; ++b) {
        const int64_t lo = b * OPT_BLOCK, hi = lo + OPT_BLOCK < n ? lo + OPT_BLOCK : n;
        sgd_range(p, g, mask, buf, lo, hi, neg_lr, has_wd, wd, has_momentum, mom,
                  has_dampening, one_minus_damp, nesterov, first);
    }
}

static inline void adam_block(float *DTNN_RESTRICT p, const float *DTNN_RESTRICT g,
                              const float *DTNN_RESTRICT mask, float *DTNN_RESTRICT m,
                              float *DTNN_RESTRICT v, int64_t lo, int64_t hi,
                              const int decay, const float wd, const int lerp_small,
                              const float w, const float one_minus_w, const float b2,
                              const float one_minus_b2, const float neg_step,
                              const float bc2_sqrt, const float eps)
{
    int64_t i;
#pragma omp simd
    for (i = lo; i < hi; ++i) {
        float gi = g[i], pi = p[i], mi, vi;
        if (decay == 1)
            gi = (pi * mask[i]) * wd + gi;
        else if (decay == 2)
            pi = pi * (mask[i] != 0.f ? wd : 1.f);   /* x * 1 == x: same bits */
        mi = m[i];
        mi = lerp_small ? mi + (gi - mi) * w : gi - (gi - mi) * one_minus_w;
        m[i] = mi;
        vi = v[i] * b2 + (gi * one_minus_b2) * gi;
        v[i] = vi;
        p[i] = pi + (mi * neg_step) / (sqrtf(vi) / bc2_sqrt + eps);
    }
}

#define ADAM_CASE(DECAY, SMALL)                                                       \
    adam_block(p, g, mask, m, v, lo, hi, DECAY, wd, SMALL, w, one_minus_w, b2,         \
               one_minus_b2, neg_step, bc2_sqrt, eps)

void dtnn_adam_update_f32(float *p, const float *g, const float *mask, float *m, float *v,
                          int64_t n, int decay, float wd, int lerp_small, float w,
                          float one_minus_w, float b2, float one_minus_b2,
                          float neg_step, float bc2_sqrt, float eps)
{
    const int64_t nb = (n + OPT_BLOCK - 1) / OPT_BLOCK;
    int64_t b;
#pragma omp parallel for schedule(static) OPT_PAR_IF(n)
    for (b = 0; b < nb; ++b) {
        const int64_t lo = b * OPT_BLOCK, hi = lo + OPT_BLOCK < n ? lo + OPT_BLOCK : n;
        if (lerp_small) {
            if (decay == 1) ADAM_CASE(1, 1);
            else if (decay == 2) ADAM_CASE(2, 1);
            else ADAM_CASE(0, 1);
        } else {
            if (decay == 1) ADAM_CASE(1, 0);
            else if (decay == 2) ADAM_CASE(2, 0);
            else ADAM_CASE(0, 0);
        }
    }
}
