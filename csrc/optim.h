/*
 * Fused optimizer updates over flat float32 vectors (dtnn/optim/): one pass per step
 * instead of 5-10 numpy passes with scratch buffers.  Every element is computed with
 * the same float32 operations, in the same order, as the numpy twins in
 * dtnn/optim/_update.py (floating-point contraction off), so compiled and twin results
 * are bit-identical, and being element-wise they do not depend on the thread count.
 * Scalars arrive already rounded to float32 by the caller, exactly as numpy rounds a
 * Python float multiplied into a float32 array.
 */
#ifndef DTNN_OPTIM_H
#define DTNN_OPTIM_H

#include <stdint.h>

/* SGD (torch.optim.SGD semantics), in place on p (and buf when momentum != 0):
 *   d = has_wd ? (p * mask) * wd + g : g
 *   momentum: buf = first ? d : (dampening ? buf * mom + d * one_minus_damp
 *                                          : buf * mom + d)
 *             d = nesterov ? buf * mom + d : buf
 *   p = p + d * neg_lr
 * g and mask are only read; buf is unused (may be NULL) when has_momentum is 0. */
void dtnn_sgd_update_f32(float *p, const float *g, const float *mask, float *buf,
                         int64_t n, float neg_lr, int has_wd, float wd,
                         int has_momentum, float mom, int has_dampening,
                         float one_minus_damp, int nesterov, int first);

/* the same update of elements [lo, hi) on the calling thread (no OpenMP): the body
 * dtnn_sgd_update_f32 runs per block, for kernels that produce g block by block
 * (csrc/decode_update.c) */
void dtnn_sgd_range_f32(float *p, const float *g, const float *mask, float *buf, int64_t lo,
                        int64_t hi, float neg_lr, int has_wd, float wd, int has_momentum,
                        float mom, int has_dampening, float one_minus_damp, int nesterov,
                        int first);

/* Adam / AdamW (torch.optim.Adam / AdamW semantics), in place on p, m, v:
 *   decay 1 (L2):        g' = (p * mask) * wd + g
 *   decay 2 (decoupled): p = mask != 0 ? p * wd : p   (wd = 1 - lr * weight_decay)
 *   m: lerp_small ? m + (g' - m) * w : g' - (g' - m) * one_minus_w
 *   v = v * b2 + (g' * one_minus_b2) * g'
 *   p = p + (m * neg_step) / (sqrt(v) / bc2_sqrt + eps) */
void dtnn_adam_update_f32(float *p, const float *g, const float *mask, float *m, float *v,
                          int64_t n, int decay, float wd, int lerp_small, float w,
                          float one_minus_w, float b2, float one_minus_b2,
                          float neg_step, float bc2_sqrt, float eps);

#endif
