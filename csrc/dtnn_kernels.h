/*
 * dtnn compiled kernels: plain C99 (+ optional OpenMP).
 *
 * All tensors are C-contiguous float32 (argmax: int32).  The caller (the Cython
 * wrappers in dtnn/_kernels/) validates shapes and computes the output sizes; the
 * kernels trust their arguments.  Layouts and semantics follow the contract in
 * dtnn/_kernels/twins.py:
 *
 *   x    (N, C, H, W)
 *   col  (C*R*S, N*Ho*Wo), row = (c*R + r)*S + s, column = (n*Ho + ho)*Wo + wo
 *   y    (N, C, Ho, Wo), argmax = flat h*W + w of the winner inside its (H, W) map
 */
#ifndef DTNN_KERNELS_H
#define DTNN_KERNELS_H

#include <stdint.h>

#if defined(_MSC_VER)
#define DTNN_RESTRICT __restrict
#else
#define DTNN_RESTRICT restrict
#endif

/* Below this many output elements a kernel runs on one thread: forking a team
 * costs more than it saves. */
#define DTNN_OMP_MIN_WORK ((int64_t)32768)

/* 1 if this translation unit was compiled with OpenMP, else 0. */
int dtnn_openmp_enabled(void);
/* omp_get_max_threads() with OpenMP, else 1. */
int dtnn_openmp_max_threads(void);

/* Fill col from x; out-of-image taps are 0.  Every col element is written. */
void dtnn_im2col_f32(const float *DTNN_RESTRICT x, float *DTNN_RESTRICT col,
                     int64_t N, int64_t C, int64_t H, int64_t W,
                     int64_t R, int64_t S,
                     int64_t stride_h, int64_t stride_w,
                     int64_t pad_h, int64_t pad_w,
                     int64_t dil_h, int64_t dil_w,
                     int64_t Ho, int64_t Wo);

/* x = adjoint of im2col applied to col (x is overwritten, not accumulated). */
void dtnn_col2im_f32(const float *DTNN_RESTRICT col, float *DTNN_RESTRICT x,
                     int64_t N, int64_t C, int64_t H, int64_t W,
                     int64_t R, int64_t S,
                     int64_t stride_h, int64_t stride_w,
                     int64_t pad_h, int64_t pad_w,
                     int64_t dil_h, int64_t dil_w,
                     int64_t Ho, int64_t Wo);

/* Max pooling forward.  Padding never wins; ties keep the first tap in row-major
 * window order; a window with no tap above -inf gives y = -inf, argmax = 0. */
void dtnn_maxpool_fwd_f32(const float *DTNN_RESTRICT x, float *DTNN_RESTRICT y,
                          int32_t *DTNN_RESTRICT argmax,
                          int64_t N, int64_t C, int64_t H, int64_t W,
                          int64_t R, int64_t S,
                          int64_t stride_h, int64_t stride_w,
                          int64_t pad_h, int64_t pad_w,
                          int64_t Ho, int64_t Wo);

/* dx (planes x HW) = dy (planes x L) routed to argmax, accumulated where windows
 * overlap.  Returns the number of argmax entries outside [0, HW) (those are
 * skipped); 0 means success. */
int64_t dtnn_maxpool_bwd_f32(const float *DTNN_RESTRICT dy,
                             const int32_t *DTNN_RESTRICT argmax,
                             float *DTNN_RESTRICT dx,
                             int64_t planes, int64_t L, int64_t HW);

#endif /* DTNN_KERNELS_H */
