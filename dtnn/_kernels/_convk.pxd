# Declarations of the convolution-variant C kernels (csrc/winograd.h, direct.h,
# transpose.h); cimported by _winograd.pyx, _direct.pyx and _transpose.pyx.
from libc.stdint cimport int64_t

cdef extern from "winograd.h" nogil:
    void dtnn_wino_filter_f32(const float *w, float *U, int64_t ups, int64_t K, int64_t C,
                              int64_t m, int flip)
    int dtnn_wino_input_f32(const float *x, float *V, int64_t vps, int64_t nb, int64_t C,
                            int64_t H, int64_t W, int64_t pad_h, int64_t pad_w, int64_t m,
                            int64_t th, int64_t tw)
    int dtnn_wino_output_f32(const float *M, int64_t mps, float *y, const float *bias,
                             int64_t nb, int64_t K, int64_t Ho, int64_t Wo, int64_t m,
                             int64_t th, int64_t tw)
    int dtnn_wino_dy_f32(const float *dy, float *D, int64_t dps, int64_t nb, int64_t K,
                         int64_t Ho, int64_t Wo, int64_t m, int64_t th, int64_t tw)
    void dtnn_wino_dfilter_f32(const float *dU, int64_t ups, float *dw, int64_t K,
                               int64_t C, int64_t m, int accumulate)

cdef extern from "direct.h" nogil:
    void dtnn_direct_fwd_f32(const float *x, const float *w, const float *bias, float *y,
                             int64_t N, int64_t C, int64_t H, int64_t W, int64_t K,
                             int64_t R, int64_t S, int64_t sh, int64_t sw, int64_t ph,
                             int64_t pw, int64_t dh, int64_t dw, int64_t G, int64_t Ho,
                             int64_t Wo)
    void dtnn_direct_bwd_data_f32(const float *dy, const float *w, float *dx, int64_t N,
                                  int64_t C, int64_t H, int64_t W, int64_t K, int64_t R,
                                  int64_t S, int64_t sh, int64_t sw, int64_t ph,
                                  int64_t pw, int64_t dh, int64_t dw, int64_t G,
                                  int64_t Ho, int64_t Wo)
    void dtnn_direct_bwd_weights_f32(const float *dy, const float *x, float *dwt,
                                     int64_t N, int64_t C, int64_t H, int64_t W,
                                     int64_t K, int64_t R, int64_t S, int64_t sh,
                                     int64_t sw, int64_t ph, int64_t pw, int64_t dh,
                                     int64_t dw, int64_t G, int64_t Ho, int64_t Wo)

cdef extern from "transpose.h" nogil:
    void dtnn_swap01_f32(const float *src, float *dst, int64_t A, int64_t B, int64_t P)
