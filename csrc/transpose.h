/* Parallel swap of the two leading axes: src (A, B, P) -> dst (B, A, P), float32. */
#ifndef DTNN_TRANSPOSE_H
#define DTNN_TRANSPOSE_H
#include <stdint.h>
void dtnn_swap01_f32(const float *src, float *dst, int64_t A, int64_t B, int64_t P);
#endif
