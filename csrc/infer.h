/*
 * Inference kernels of the fused plan (dtnn/infer): convolution and dense layers with
 * their bias, folded BatchNorm and activation applied in the same pass, and the
 * element-wise and pooling ops a plan needs, all writing into buffers the caller
 * allocated once for a fixed input shape (csrc/infer.c, template csrc/infer_tmpl.h).
 *
 * Layouts are NCHW float32, C-contiguous.  Activations (``act``): DTNN_ACT_NONE,
 * DTNN_ACT_RELU, DTNN_ACT_RELU6 and DTNN_ACT_PRELU (``alpha`` one slope per output
 * channel).  The kernels pick an instruction-set path at run time (dtnn_isa.h); results
 * differ between paths only by rounding.  Every kernel has a numpy twin in
 * dtnn/infer/kernels.py.
 */
#ifndef DTNN_INFER_H
#define DTNN_INFER_H

#include <stdint.h>

#define DTNN_ACT_NONE 0
#define DTNN_ACT_RELU 1
#define DTNN_ACT_RELU6 2
#define DTNN_ACT_PRELU 3

/* Output channels per block of the pixel-vectorised kernel's packed filters. */
#define DTNN_INFER_PX_KB 8
/* The channel-vectorised kernel's packed filters have K rounded up to this. */
#define DTNN_INFER_CH_KP 16

/* Pixel-vectorised direct convolution, stride 1, groups 1 (the layers of a pruned
 * network: few channels, small images).  Each image is copied into ``xpad``, a
 * zero-bordered (C, H + 2ph, W + 2pw) copy, and the outputs are computed on the padded
 * width (Wp = W + 2pw) so that every tap of a run of consecutive outputs reads
 * consecutive inputs:
 *   wpk   (ceil(K / 8), C*R*S, 8): wpk[kb, (c*R + r)*S + s, j] = w[kb*8 + j, c, r, s]
 *   bias, alpha  (ceil(K / 8) * 8,)  (alpha only for DTNN_ACT_PRELU)
 *   xpad  N * C * (H + 2ph) * (W + 2pw) + dtnn_infer_px_slack(S, dw) floats, zero at
 *         the first call (only the interior is written, the border stays zero).
 */
int64_t dtnn_infer_px_span(int64_t Ho, int64_t Wp);
int64_t dtnn_infer_px_slack(int64_t S, int64_t dw);
void dtnn_infer_conv_px_f32(const float *x, float *xpad, const float *wpk,
                            const float *bias, const float *alpha, int act, float *y,
                            int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                            int64_t R, int64_t S, int64_t ph, int64_t pw,
                            int64_t dh, int64_t dw, int64_t Ho, int64_t Wo);

/* Channel-vectorised direct convolution, any stride / padding / dilation, groups 1:
 * one output pixel at a time, all its channels in vector registers, taps outside the
 * image skipped (tiny images, strided layers).  A dense layer is the case
 * H = W = R = S = 1 (x (N, F), y (N, units)).
 *   wck   (C*R*S, Kp), Kp = K rounded up to DTNN_INFER_CH_KP, zero past K:
 *         wck[(c*R + r)*S + s, k] = w[k, c, r, s]
 *   bias, alpha  (Kp,) */
void dtnn_infer_conv_ch_f32(const float *x, const float *wck, const float *bias,
                            const float *alpha, int act, float *y,
                            int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                            int64_t Kp, int64_t R, int64_t S, int64_t sh, int64_t sw,
                            int64_t ph, int64_t pw, int64_t dh, int64_t dw,
                            int64_t Ho, int64_t Wo);

/* y[n, c, p] = act(x[n, c, p] * scale[c] + shift[c]); scale / shift may be NULL
 * (1 / 0); x == y allowed (the epilogue of a convolution computed elsewhere, a
 * BatchNorm that follows no convolution, a lone activation). */
void dtnn_infer_affine_act_f32(const float *x, float *y, int64_t N, int64_t C, int64_t P,
                               const float *scale, const float *shift, int act,
                               const float *alpha);

/* Max pooling without argmax (padding taps never win, as in dtnn's MaxPool2D). */
void dtnn_infer_maxpool_f32(const float *x, float *y, int64_t N, int64_t C, int64_t H,
                            int64_t W, int64_t R, int64_t S, int64_t sh, int64_t sw,
                            int64_t ph, int64_t pw, int64_t Ho, int64_t Wo);

#endif /* DTNN_INFER_H */
