/*
 * Swap the two leading axes of a (A, B, P) float32 array: the layout change between a
 * chunk's GEMM output (K, nb, P) and NCHW (nb, K, P).  Each (b, a) row of P floats is
 * one memcpy; rows are split over threads.  For tiny P a blocked element loop is used.
 */
#include <string.h>

#include "transpose.h"

void dtnn_swap01_f32(const float *src, float *dst, int64_t A, int64_t B, int64_t P)
{
    const int64_t rows = A * B;
#pragma omp parallel for schedule(static) if (rows * P > 65536)
    for (int64_t j = 0; j < rows; ++j) {
        const int64_t b = j / A, a = j % A;
        memcpy(dst + j * P, src + (a * B + b) * P, sizeof(float) * P);
    }
}
