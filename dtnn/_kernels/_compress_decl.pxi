# The C API of csrc/compress.c, csrc/compress_topk.c, csrc/compress_qring.c and csrc/bitpack.c,
# as _compress.pyx calls it.
from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint16_t, uint64_t

cdef extern from "compress.h" nogil:
    int dtnn_cx_openmp_enabled()
    int dtnn_cx_openmp_max_threads()
    void dtnn_cx_uniform(float *out, int64_t n, uint64_t key)
    void dtnn_cx_f32_to_f16(const float *x, uint16_t *h, int64_t n, float scale)
    void dtnn_cx_f16_to_f32(const uint16_t *h, float *out, int64_t n, float alpha, int accumulate)
    void dtnn_cx_f32_to_bf16(const float *x, uint16_t *h, int64_t n, float scale)
    void dtnn_cx_bf16_to_f32(const uint16_t *h, float *out, int64_t n, float alpha, int accumulate)
    void dtnn_cx_chunk_norms(const float *x, int64_t n, int64_t chunk, int kind, float *out)
    void dtnn_cx_quantize_i8(const float *x, int8_t *q, int64_t n, int64_t chunk,
                             const float *scales, float levels, uint64_t key, int stochastic)
    void dtnn_cx_dequantize_i8(const int8_t *q, float *out, int64_t n, int64_t chunk,
                               const float *scales, double alpha, double levels, int accumulate)
    void dtnn_cx_terngrad_quantize(const float *x, uint8_t *packed, int64_t n,
                                   const float *scales, int64_t chunk, uint64_t key)
    void dtnn_cx_terngrad_dequantize(const uint8_t *packed, float *out, int64_t n,
                                     const float *scales, int64_t chunk, float alpha,
                                     int accumulate)
    double dtnn_cx_add_l1(const float *x, float *e, int64_t n)
    void dtnn_cx_sign_pack(float *c, uint8_t *bits, int64_t n, const float *values,
                           int64_t chunk, int ef)
    void dtnn_cx_sign_encode(const float *x, float *c, int64_t n, int64_t chunk,
                             float *values, uint8_t *bits, int ef)
    void dtnn_cx_sign_unpack(const uint8_t *bits, float *out, int64_t n, const float *values,
                             int64_t chunk, float alpha, int accumulate)
    void dtnn_cx_decode_window(int kind, const uint8_t *codes, const float *scales,
                               int64_t chunk, double alpha, double levels, int64_t s0,
                               int64_t e0, const float *base, float *out, int mode)
    int dtnn_cx_qring_hop(int kind, int norm, const uint8_t *pin, int64_t n, int64_t chunk,
                          float levels, int stochastic, uint64_t key, int64_t npieces,
                          const int64_t *bounds, float **ptrs, float *res, uint8_t *pout)
    void dtnn_cx_decode_pieces(int kind, const uint8_t *payload, int64_t n, int64_t chunk,
                               double alpha, double levels, int64_t npieces, const int64_t *bounds,
                               float **ptrs)
    int64_t dtnn_cx_topk(const float *x, float *c, int64_t n, int64_t k, int32_t *idx,
                         float *val, int zero)
    void dtnn_cx_scatter_add(const int32_t *idx, const float *val, int64_t k, float alpha,
                             float *out)
    void dtnn_cx_gather(const float *x, float *c, int64_t n, const int32_t *idx, int64_t k,
                        float *val, int zero)

cdef extern from "bitpack.h" nogil:
    int64_t dtnn_bp_packed_size(int64_t n, int bits)
    void dtnn_bp_pack(const int8_t *q, uint8_t *packed, int64_t n, int bits)
    void dtnn_bp_unpack(const uint8_t *packed, int8_t *q, int64_t n, int bits)
    void dtnn_bp_dequantize(const uint8_t *packed, float *out, int64_t n, int bits,
                            int64_t chunk, const float *scales, double alpha, double levels,
                            int accumulate)
