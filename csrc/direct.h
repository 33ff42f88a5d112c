/*
 * Direct convolution (dtnn.conv.direct) for small layers: NCHW float32, any stride,
 * padding, dilation and groups.  w is (K, C/G, R, S); dw has the same shape.
 */
#ifndef DTNN_DIRECT_H
#define DTNN_DIRECT_H
#include <stdint.h>

void dtnn_direct_fwd_f32(const float *x, const float *w, const float *bias, float *y,
                         int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                         int64_t R, int64_t S, int64_t sh, int64_t sw, int64_t ph,
                         int64_t pw, int64_t dh, int64_t dw, int64_t G, int64_t Ho,
                         int64_t Wo);
void dtnn_direct_bwd_data_f32(const float *dy, const float *w, float *dx, int64_t N,
                              int64_t C, int64_t H, int64_t W, int64_t K, int64_t R,
                              int64_t S, int64_t sh, int64_t sw, int64_t ph, int64_t pw,
                              int64_t dh, int64_t dw, int64_t G, int64_t Ho, int64_t Wo);
void dtnn_direct_bwd_weights_f32(const float *dy, const float *x, float *dwt, int64_t N,
                                 int64_t C, int64_t H, int64_t W, int64_t K, int64_t R,
                                 int64_t S, int64_t sh, int64_t sw, int64_t ph,
                                 int64_t pw, int64_t dh, int64_t dw, int64_t G,
                                 int64_t Ho, int64_t Wo);
#endif
