/*
 * Training-time BatchNorm and PReLU passes over (N, C, L) float32 tensors (NCHW with
 * L = H*W), C-contiguous, parallel (OpenMP) over the channels.  Each channel's sums
 * are accumulated per row of L in float (SIMD) and across rows in double, so the
 * statistics do not drift with the batch; the numpy twins are in
 * dtnn/_kernels/twins.py.
 */
#ifndef DTNN_BNACT_H
#define DTNN_BNACT_H

#include <stdint.h>

/* Per channel: mean and biased variance (shifted by the channel's first value, so a
 * large mean does not cancel the variance). */
void dtnn_bn_stats_f32(const float *x, int64_t N, int64_t C, int64_t L,
                       float *mean, float *var);
/* y = x * scale[c] + shift[c] (y may be x). */
void dtnn_bn_apply_f32(const float *x, float *y, int64_t N, int64_t C, int64_t L,
                       const float *scale, const float *shift);
/* dbeta[c] = sum dy, dgamma[c] = sum dy * xhat with xhat = (x - mean) * inv_std; then,
 * when dx is not NULL: training: dx = gamma * inv_std * (dy - dbeta/n - xhat*dgamma/n),
 * inference (batch statistics not used): dx = gamma * inv_std * dy. */
void dtnn_bn_backward_f32(const float *dy, const float *x, float *dx, int64_t N,
                          int64_t C, int64_t L, const float *mean, const float *inv_std,
                          const float *gamma, float *dgamma, float *dbeta, int training);
/* y = relu(x * scale[c] + shift[c]) in one pass (NaN kept, like relu_forward) */
void dtnn_bn_apply_relu_f32(const float *x, float *y, int64_t N, int64_t C, int64_t L,
                            const float *scale, const float *shift);
/* dtnn_bn_backward_f32 of (y > 0 ? dy : 0), y the fused forward's output, without the
 * gated temporary (same bits as relu_backward then bn_backward) */
void dtnn_bn_relu_backward_f32(const float *dy, const float *y, const float *x, float *dx,
                               int64_t N, int64_t C, int64_t L, const float *mean,
                               const float *inv_std, const float *gamma, float *dgamma,
                               float *dbeta, int training);
/* y = x > 0 ? x : alpha[c] * x */
void dtnn_prelu_forward_f32(const float *x, float *y, int64_t N, int64_t C, int64_t L,
                            const float *alpha);
/* dalpha[c] = sum over x < 0 of dy * x; dx (when not NULL) = x > 0 ? dy : alpha[c]*dy */
void dtnn_prelu_backward_f32(const float *dy, const float *x, float *dx, int64_t N,
                             int64_t C, int64_t L, const float *alpha, float *dalpha);
/* y = x > 0 ? x : 0 (NaN kept), over n contiguous floats */
void dtnn_relu_forward_f32(const float *x, float *y, int64_t n);
/* dx = y > 0 ? dy : 0, over n contiguous floats (y: the forward's output) */
void dtnn_relu_backward_f32(const float *dy, const float *y, float *dx, int64_t n);
/* out[c] = sum over n, l of x[n, c, l] (a convolution's bias gradient) */
void dtnn_channel_sum_f32(const float *x, int64_t N, int64_t C, int64_t L, float *out);

/* BatchNorm (training, batch statistics as scale/shift) + ReLU + 2x2 stride-2 max pool
 * of x (N, C, H, W): y and argmax (index in the H*W plane) are (N, C, H/2, W/2) */
void dtnn_bn_relu_pool2_f32(const float *x, float *y, int32_t *argmax, int64_t N,
                            int64_t C, int64_t H, int64_t W, const float *scale,
                            const float *shift);
/* its backward from dy (N, C, H/2, W/2), the forward's y and argmax, and x: dx (N, C,
 * H, W) or NULL, dgamma, dbeta -- the same bits as the pool's, then BatchNorm+ReLU's;
 * 0, or -1 when a row buffer could not be allocated */
int dtnn_bn_relu_pool2_backward_f32(const float *dy, const float *y, const int32_t *argmax,
                                    const float *x, float *dx, int64_t N, int64_t C,
                                    int64_t H, int64_t W, const float *mean,
                                    const float *inv_std, const float *gamma,
                                    float *dgamma, float *dbeta);

#endif
