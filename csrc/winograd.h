/*
 * Winograd F(m x m, 3 x 3) transforms for NCHW float32 (dtnn.conv.winograd).
 *
 * Layouts (alpha = m + 2, tiles numbered t = (n*th + i)*tw + j for a chunk of nb images,
 * T = nb*th*tw):
 *   x  (nb, C, H, W)          input images (padding pad_h/pad_w applied implicitly)
 *   V  (alpha*alpha, C, T)     transformed input tiles      V = B^T d B
 *   M  (alpha*alpha, K, T)     element-wise products (one GEMM per position)
 *   y  (nb, K, Ho, Wo)         output                       y = A^T M A (+ bias)
 * The transforms vectorise across tiles: a block of tiles of one channel is gathered
 * into a (alpha, alpha, TB) buffer and every transform row is a loop over TB.
 */
#ifndef DTNN_WINOGRAD_H
#define DTNN_WINOGRAD_H
#include <stdint.h>

void dtnn_wino_input_f32(const float *x, float *V, int64_t nb, int64_t C, int64_t H,
                         int64_t W, int64_t pad_h, int64_t pad_w, int64_t m,
                         int64_t th, int64_t tw);

void dtnn_wino_output_f32(const float *M, float *y, const float *bias, int64_t nb,
                          int64_t K, int64_t Ho, int64_t Wo, int64_t m, int64_t th,
                          int64_t tw);
#endif
