/*
 * Fused ("implicit im2col") convolution kernels, AVX-512 (csrc/im2col.c).
 *
 * They compute the convolution GEMMs without materialising the column matrix: the
 * micro-kernels read a zero-padded copy of a block of images (see the comment in
 * im2col.c).  Built for any x86-64 target with function-level target attributes;
 * dtnn_fused_supported() says whether this CPU can run them (callers fall back to
 * im2col + BLAS when it cannot; the functions then return without writing).  Pointers must not
 * alias; the workspace needs no alignment or initialisation.
 *
 * Layouts are NCHW float32, C-contiguous, weights (K, C/G, R, S); groups G.
 */
#ifndef DTNN_IM2COL_FUSED_H
#define DTNN_IM2COL_FUSED_H

#include <stdint.h>

/* 1 if the kernels were compiled in and this CPU has AVX-512F, else 0. */
int dtnn_fused_supported(void);

/* Forward of any convolution (stride, padding, dilation, groups); bias may be NULL:
 *   y[n, g*Kg + o, ho, wo] = bias[g*Kg + o] + sum_{i < Cg, r, s} wt(g, o, i, r*S + s)
 *                            * x[n, g*Cg + i, ho*sh - ph + r*dh, wo*sw - pw + s*dw]
 * wt(g, o, i, t) = w[g*w_gs + o*w_so + i*w_si + t*w_st] (w_st may be negative: the
 * backward-data of a stride-1 convolution is this with the taps reversed, channels
 * swapped and padding dil*(R-1) - pad).  y (N, K, Ho, Wo).
 * ws: dtnn_conv_fwd_ws_floats(...) floats. */
int64_t dtnn_conv_fwd_ws_floats(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                                int64_t R, int64_t S, int64_t ph, int64_t pw,
                                int64_t Ho, int64_t Wo, int64_t G);
void dtnn_conv_fwd_f32(const float *x, const float *w, const float *bias, float *y,
                       int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                       int64_t R, int64_t S, int64_t sh, int64_t sw,
                       int64_t ph, int64_t pw, int64_t dh, int64_t dwl,
                       int64_t Ho, int64_t Wo, int64_t G,
                       int64_t w_gs, int64_t w_so, int64_t w_si, int64_t w_st, float *ws);

/* Backward-weights of any convolution (stride, padding, dilation, groups):
 *   dw[k, c, r, s] = sum_{n, ho, wo} dy[n, k, ho, wo] * x[n, g*Cg + c, ho*sh - ph + r*dh,
 *                                                         wo*sw - pw + s*dw]
 * dw (K, Cg, R, S) is overwritten.  ws: dtnn_conv_bww_ws_floats(...) floats. */
int64_t dtnn_conv_bww_ws_floats(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                                int64_t R, int64_t S, int64_t ph, int64_t pw,
                                int64_t Ho, int64_t Wo, int64_t G);
void dtnn_conv_bww_f32(const float *x, const float *dy, float *dw,
                       int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                       int64_t R, int64_t S, int64_t sh, int64_t sw,
                       int64_t ph, int64_t pw, int64_t dh, int64_t dwl,
                       int64_t Ho, int64_t Wo, int64_t G, float *ws);

#endif /* DTNN_IM2COL_FUSED_H */
