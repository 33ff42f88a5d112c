/*
 * Winograd F(m x m, 3 x 3) transforms for NCHW float32 (dtnn.conv.winograd).
 *
 * Layouts (alpha = m + 2, m in {2, 4}; for a chunk of nb images with th x tw tiles each,
 * T = nb*th*tw and tile (n, i, j) is column t = (j*th + i)*nb + n, images fastest):
 *   w  (K, C, 3, 3)            filters
 *   U  (alpha*alpha, K, C)     transformed filters          U = G w G^T
 *                              flip: of the 180°-rotated filters, G rot(w) G^T
 *                              (backward-data multiplies by U[p]^T)
 *   x  (nb, C, H, W)           input images (padding pad_h/pad_w applied implicitly)
 *   V  (alpha*alpha, C, T)     transformed input tiles      V = B^T d B
 *   M  (alpha*alpha, K, T)     element-wise products (one GEMM per position p)
 *   y  (nb, K, Ho, Wo)         output                       y = A^T M A (+ bias)
 * The tile padding must cover the image: (th-1)*m + alpha >= H + 2*pad_h (same for w),
 * which holds for th = ceil(Ho/m), Ho = H + 2*pad_h - 2.
 * The transforms vectorise across WINO_LANES (tile row, image) pairs, or filters.
 * U, V and M may be padded between positions: U[p] starts at U + p*ups (ups >= K*C),
 * V[p] at V + p*vps (vps >= C*T) and M[p] at M + p*mps (mps >= K*T).  A stride that is not a multiple of 4 KiB keeps the
 * alpha² rows a transform touches at once from competing for the same cache sets.
 * Input/output return 0, or -1 when their scratch memory cannot be allocated.
 */
#ifndef DTNN_WINOGRAD_H
#define DTNN_WINOGRAD_H
#include <stdint.h>

#define WINO_LANES 16

void dtnn_wino_filter_f32(const float *w, float *U, int64_t ups, int64_t K, int64_t C,
                          int64_t m, int flip);

int dtnn_wino_input_f32(const float *x, float *V, int64_t vps, int64_t nb, int64_t C,
                        int64_t H, int64_t W, int64_t pad_h, int64_t pad_w, int64_t m,
                        int64_t th, int64_t tw);

int dtnn_wino_output_f32(const float *M, int64_t mps, float *y, const float *bias,
                         int64_t nb, int64_t K, int64_t Ho, int64_t Wo, int64_t m,
                         int64_t th, int64_t tw);

/* backward-weights: the adjoints of the output transform (without bias) and of the
 * filter transform (without flip).
 *   dy (nb, K, Ho, Wo) -> D (alpha*alpha, K, T)   D = A dy A^T per m x m tile, zero past
 *                                                 Ho / Wo (the columns of V); D[p] at
 *                                                 D + p*dps
 *   dU (alpha*alpha, K, C) -> dw (K, C, 3, 3)     dw = G^T dU G (accumulate: dw +=);
 *                                                 dU[p] at dU + p*ups */
int dtnn_wino_dy_f32(const float *dy, float *D, int64_t dps, int64_t nb, int64_t K,
                     int64_t Ho, int64_t Wo, int64_t m, int64_t th, int64_t tw);

void dtnn_wino_dfilter_f32(const float *dU, int64_t ups, float *dw, int64_t K, int64_t C,
                           int64_t m, int accumulate);
#endif
