/*
 * Fused ("implicit im2col") convolution kernels, AVX-512 and AVX2 + FMA
 * (csrc/im2col_fused.c, im2col_fused_avx512.c, im2col_fused_avx2.c).
 *
 * They compute the convolution GEMMs without materialising the column matrix: the
 * micro-kernels read a zero-padded copy of a block of images (see the comment in
 * im2col_fused.c).  Built for any x86-64 target with function-level target attributes.
 * ``isa`` picks the instruction set: -1 the active level (dtnn_isa.h: the CPU's best,
 * capped by DTNN_ISA), or DTNN_ISA_AVX512 / DTNN_ISA_AVX2.  dtnn_fused_isa(isa) says
 * which level a request runs at, or -1 when it cannot run on this CPU (callers fall
 * back to im2col + BLAS; the functions then return without writing).  Results do not
 * depend on the thread count; they differ between ISAs only by rounding (the AVX2
 * and AVX-512 tiles sum in the same order, FMA for FMA).  Pointers must not alias;
 * the workspace needs no alignment or initialisation.
 *
 * Layouts are NCHW float32, C-contiguous, weights (K, C/G, R, S); groups G.
 */
#ifndef DTNN_IM2COL_FUSED_H
#define DTNN_IM2COL_FUSED_H

#include <stdint.h>

/* The level (DTNN_ISA_AVX512 / DTNN_ISA_AVX2) a request runs at, or -1 if it cannot
 * run here (not compiled in, or the CPU lacks the instructions, or capped below AVX2). */
int dtnn_fused_isa(int isa);
/* 1 if the path for ``isa`` was compiled in (whether or not this CPU runs it). */
int dtnn_fused_compiled(int isa);
/* 1 if a convolution of this shape (C input channels, R x S filters, G groups, stride_w
 * sw, Wo output columns) runs the direct kernels for short reductions (first layers)
 * in the forward and backward-weights, 0 if the tiled ones (same on every ISA path). */
int dtnn_fused_direct(int64_t C, int64_t R, int64_t S, int64_t G, int64_t sw, int64_t Wo);
/* 1 if a convolution's backward-weights runs the pointwise kernel (1x1, stride 1, no
 * padding, P = Ho*Wo >= 256 pixels): dy and x read in
 * place, the bias gradient summed in the same sweep (same on every ISA path). */
int dtnn_fused_pointwise(int64_t R, int64_t S, int64_t sh, int64_t sw, int64_t ph,
                         int64_t pw, int64_t P);

/* 1 if the forward (pass 0) or backward-weights (pass 1) of this convolution runs
 * live-tap blocks (im2col_fused_live.c: blocks of >= 6 small images, images innermost,
 * skipping the products that read padding), 0 if the channel-major ones.  The
 * backward-data of a stride-1 convolution is the forward of its transposed
 * convolution (dy of Ho x Wo, padding dil*(k-1) - pad).  Read at each call: the
 * environment variable DTNN_FUSED_LIVE_MIN (percent of padding products from which
 * live-tap blocks run, default 15; above 100: never). */
int dtnn_fused_live(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R,
                    int64_t S, int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh,
                    int64_t dwl, int64_t Ho, int64_t Wo, int64_t G, int pass);

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
                       int64_t w_gs, int64_t w_so, int64_t w_si, int64_t w_st, int isa,
                       float *ws);

/* Backward-weights of any convolution (stride, padding, dilation, groups):
 *   dw[k, c, r, s] = sum_{n, ho, wo} dy[n, k, ho, wo] * x[n, g*Cg + c, ho*sh - ph + r*dh,
 *                                                         wo*sw - pw + s*dw]
 * dw (K, Cg, R, S) is overwritten.  ws: dtnn_conv_bww_ws_floats(...) floats.
 * db: NULL, or (K) overwritten with sum_{n, ho, wo} dy[n, k, ho, wo] -- only where
 * dtnn_fused_pointwise() holds (elsewhere it is left alone). */
int64_t dtnn_conv_bww_ws_floats(int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                                int64_t R, int64_t S, int64_t ph, int64_t pw,
                                int64_t Ho, int64_t Wo, int64_t G);
void dtnn_conv_bww_f32(const float *x, const float *dy, float *dw,
                       int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                       int64_t R, int64_t S, int64_t sh, int64_t sw,
                       int64_t ph, int64_t pw, int64_t dh, int64_t dwl,
                       int64_t Ho, int64_t Wo, int64_t G, int isa, float *ws, float *db);

#endif /* DTNN_IM2COL_FUSED_H */
