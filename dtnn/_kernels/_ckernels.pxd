# Declarations of the plain-C kernels in csrc/ (see csrc/dtnn_kernels.h).
# cimported by _im2col.pyx and _pool.pyx; there is no _ckernels module.
from libc.stdint cimport int32_t, int64_t

# The signature im2col and col2im share (declared once, as the function type of both)
ctypedef void (*dtnn_geom_fn)(const float *src, float *dst,
                              int64_t N, int64_t C, int64_t H, int64_t W,
                              int64_t R, int64_t S,
                              int64_t stride_h, int64_t stride_w,
                              int64_t pad_h, int64_t pad_w,
                              int64_t dil_h, int64_t dil_w,
                              int64_t Ho, int64_t Wo) noexcept nogil

cdef extern from "dtnn_kernels.h" nogil:
    int dtnn_openmp_enabled()
    int dtnn_openmp_max_threads()

    # im2col and col2im: (source, destination, geometry); see dtnn_geom_fn
    dtnn_geom_fn dtnn_im2col_f32   # (x, col, ...)
    dtnn_geom_fn dtnn_col2im_f32   # (col, x, ...)

    void dtnn_maxpool_fwd_f32(const float *x, float *y, int32_t *argmax,
                              int64_t N, int64_t C, int64_t H, int64_t W,
                              int64_t R, int64_t S,
                              int64_t stride_h, int64_t stride_w,
                              int64_t pad_h, int64_t pad_w,
                              int64_t Ho, int64_t Wo)

    int64_t dtnn_maxpool_bwd_f32(const float *dy, const int32_t *argmax, float *dx,
                                 int64_t planes, int64_t L, int64_t HW)
