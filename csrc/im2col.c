/*
 * im2col / col2im for NCHW float32 tensors (see dtnn_kernels.h for the layout).
 *
 * im2col is parallel over (col row, image) pairs: each pair owns the contiguous
 * Ho*Wo slice col[row, n*Ho*Wo : (n+1)*Ho*Wo], so threads never share output.
 * col2im is parallel over (n, c) planes: every column entry of row (c, r, s) and
 * image n lands in plane (n, c) only, so again no two threads write the same
 * pixel, and each pixel accumulates its taps in (r, s) order like the twin does.
 */
#include <string.h>

#include "dtnn_kernels.h"

#ifdef _OPENMP
#include <omp.h>
#endif

int dtnn_openmp_enabled(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int dtnn_openmp_max_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

/* Output positions o in [0, n_out) whose input index o*stride + off lies in
 * [0, n_in): they form the range [*lo, *hi). */
static inline void valid_range(int64_t n_out, int64_t n_in, int64_t stride,
                               int64_t off, int64_t *lo, int64_t *hi)
{
    int64_t a = (off >= 0) ? 0 : (-off + stride - 1) / stride;
    int64_t b = (n_in - 1 - off < 0) ? 0 : (n_in - 1 - off) / stride + 1;
    if (a > n_out) a = n_out;
    if (b > n_out) b = n_out;
    if (b < a) b = a;
    *lo = a;
    *hi = b;
}

void dtnn_im2col_f32(const float *DTNN_RESTRICT x, float *DTNN_RESTRICT col,
                     int64_t N, int64_t C, int64_t H, int64_t W,
                     int64_t R, int64_t S,
                     int64_t stride_h, int64_t stride_w,
                     int64_t pad_h, int64_t pad_w,
                     int64_t dil_h, int64_t dil_w,
                     int64_t Ho, int64_t Wo)
{
    const int64_t rows = C * R * S;
    const int64_t plane_out = Ho * Wo;
    const int64_t ncols = N * plane_out;
    const int64_t tasks = rows * N;
    /* stride 1 and output rows as long as input rows: a tap shifts the whole plane by
     * one flat offset, so the valid block is one contiguous copy (plus column fix-ups) */
    const int shift = stride_h == 1 && stride_w == 1 && Wo == W;

#ifdef _OPENMP
#pragma omp parallel if (rows * ncols >= DTNN_OMP_MIN_WORK)
#endif
    {
        /* a thread's tasks are consecutive: (row, image) pairs, row-major, so the
         * per-row quantities are recomputed only when the row changes */
        int64_t prev = -1, c = 0, h_off = 0, w_off = 0, lo = 0, hi = 0, hlo = 0, hhi = 0;
        int64_t t;
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (t = 0; t < tasks; ++t) {
            const int64_t row = t / N;
            const int64_t n = t - row * N;
            const float *DTNN_RESTRICT plane;
            float *DTNN_RESTRICT dst;
            int64_t ho, wo;
            if (row != prev) {
                const int64_t r = (row / S) % R, s = row % S;
                c = row / (R * S);
                h_off = r * dil_h - pad_h;
                w_off = s * dil_w - pad_w;
                valid_range(Wo, W, stride_w, w_off, &lo, &hi);
                valid_range(Ho, H, stride_h, h_off, &hlo, &hhi);
                prev = row;
            }
            plane = x + (n * C + c) * H * W;
            dst = col + row * ncols + n * plane_out;
            if (hhi <= hlo || hi <= lo) {
                memset(dst, 0, (size_t)plane_out * sizeof(float));
                continue;
            }
            if (shift) {
                const int64_t k0 = hlo * Wo + lo, k1 = (hhi - 1) * Wo + hi;
                memset(dst, 0, (size_t)k0 * sizeof(float));
                memcpy(dst + k0, plane + k0 + h_off * W + w_off, (size_t)(k1 - k0) * sizeof(float));
                memset(dst + k1, 0, (size_t)(plane_out - k1) * sizeof(float));
                if (lo > 0 || hi < Wo)
                    for (ho = hlo; ho < hhi; ++ho) {
                        float *DTNN_RESTRICT d = dst + ho * Wo;
                        for (wo = 0; wo < lo; ++wo)
                            d[wo] = 0.0f;
                        for (wo = hi; wo < Wo; ++wo)
                            d[wo] = 0.0f;
                    }
                continue;
            }
            if (hlo > 0)
                memset(dst, 0, (size_t)(hlo * Wo) * sizeof(float));
            if (hhi < Ho)
                memset(dst + hhi * Wo, 0, (size_t)((Ho - hhi) * Wo) * sizeof(float));
            for (ho = hlo; ho < hhi; ++ho) {
                const float *DTNN_RESTRICT src = plane + (ho * stride_h + h_off) * W;
                float *DTNN_RESTRICT d = dst + ho * Wo;
                for (wo = 0; wo < lo; ++wo)
                    d[wo] = 0.0f;
                if (stride_w == 1) {
                    if (hi - lo >= 32)
                        memcpy(d + lo, src + lo + w_off, (size_t)(hi - lo) * sizeof(float));
                    else
                        for (wo = lo; wo < hi; ++wo)
                            d[wo] = src[wo + w_off];
                } else {
                    for (wo = lo; wo < hi; ++wo)
                        d[wo] = src[wo * stride_w + w_off];
                }
                for (wo = hi; wo < Wo; ++wo)
                    d[wo] = 0.0f;
            }
        }
    }
}

void dtnn_col2im_f32(const float *DTNN_RESTRICT col, float *DTNN_RESTRICT x,
                     int64_t N, int64_t C, int64_t H, int64_t W,
                     int64_t R, int64_t S,
                     int64_t stride_h, int64_t stride_w,
                     int64_t pad_h, int64_t pad_w,
                     int64_t dil_h, int64_t dil_w,
                     int64_t Ho, int64_t Wo)
{
    const int64_t planes = N * C;
    const int64_t plane_in = H * W;
    const int64_t plane_out = Ho * Wo;
    const int64_t ncols = N * plane_out;
    int64_t p;

#ifdef _OPENMP
#pragma omp parallel for schedule(static) \
    if (C * R * S * ncols >= DTNN_OMP_MIN_WORK && planes > 1)
#endif
    for (p = 0; p < planes; ++p) {
        const int64_t n = p / C;
        const int64_t c = p - n * C;
        float *DTNN_RESTRICT plane = x + p * plane_in;
        int64_t r, s, ho, wo, lo, hi;

        memset(plane, 0, (size_t)plane_in * sizeof(float));

        for (r = 0; r < R; ++r) {
            const int64_t h_off = r * dil_h - pad_h;
            for (s = 0; s < S; ++s) {
                const int64_t w_off = s * dil_w - pad_w;
                const int64_t row = (c * R + r) * S + s;
                const float *DTNN_RESTRICT src = col + row * ncols + n * plane_out;

                valid_range(Wo, W, stride_w, w_off, &lo, &hi);
                if (hi <= lo)
                    continue;

                for (ho = 0; ho < Ho; ++ho) {
                    const int64_t ih = ho * stride_h + h_off;
                    float *DTNN_RESTRICT d;
                    const float *DTNN_RESTRICT sr;
                    if (ih < 0 || ih >= H)
                        continue;
                    d = plane + ih * W;
                    sr = src + ho * Wo;
                    if (stride_w == 1) {
                        for (wo = lo; wo < hi; ++wo)
                            d[wo + w_off] += sr[wo];
                    } else {
                        for (wo = lo; wo < hi; ++wo)
                            d[wo * stride_w + w_off] += sr[wo];
                    }
                }
            }
        }
    }
}
