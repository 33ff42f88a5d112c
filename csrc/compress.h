/*
 * dtnn gradient-compression kernels: plain C99 (+ optional OpenMP).
 *
 * Every kernel has a numpy twin of the same name in dtnn/compress/twins.py; that
 * file is the contract (argument meaning, rounding, tie rules).  The Cython wrapper
 * dtnn/_kernels/_compress.pyx validates arguments; these functions trust them.
 *
 * Conventions
 *   n        number of float32 elements (< 2^31 for the index-producing kernels)
 *   scale    multiplies the input before conversion/quantisation
 *   alpha    multiplies the decoded value; accumulate != 0 means out += value,
 *            else out = value
 *   key      64-bit key of the counter-based RNG: mixed once per call into (k0, k1)
 *            (splitmix64 finaliser); element i draws u = hash(uint32 i) >> 8, times
 *            2^-24, in [0, 1), hash = one xorshift-multiply round keyed by k0 and k1
 *            (twins.py has the exact definition; independent of the thread count:
 *            every element has its own counter)
 *   Reductions (norms, add_l1) sum float partials of 16 terms, combine them in double
 *   in a fixed order per block of DTNN_CX_BLOCK elements and then the block sums in
 *   order, so results do not depend on the number of threads.
 */
#ifndef DTNN_COMPRESS_H
#define DTNN_COMPRESS_H

#include <stdint.h>

#define DTNN_CX_BLOCK ((int64_t)8192)
#define DTNN_CX_MIN_WORK ((int64_t)65536)

int dtnn_cx_openmp_enabled(void);
int dtnn_cx_openmp_max_threads(void);

/* counter-based RNG, exposed for tests: out[i] = u(i) */
void dtnn_cx_uniform(float *out, int64_t n, uint64_t key);

/* fp32 <-> fp16 (IEEE binary16, round to nearest even) / bf16 (round to nearest even,
 * NaN stays NaN) */
void dtnn_cx_f32_to_f16(const float *x, uint16_t *h, int64_t n, float scale);
void dtnn_cx_f16_to_f32(const uint16_t *h, float *out, int64_t n, float alpha, int accumulate);
void dtnn_cx_f32_to_bf16(const float *x, uint16_t *h, int64_t n, float scale);
void dtnn_cx_bf16_to_f32(const uint16_t *h, float *out, int64_t n, float alpha, int accumulate);

/* out[c] = norm of chunk c (kind 0: L2, 1: max |x|, 2: sum |x|); chunks of `chunk`
 * elements, the last one possibly shorter */
void dtnn_cx_chunk_norms(const float *x, int64_t n, int64_t chunk, int kind, float *out);

/* q[i] = sign(x) * min(levels, floor(|x| * levels / scales[c] + r)), r = u(i) if
 * stochastic else 0.5; scales[c] <= 0 gives 0 */
void dtnn_cx_quantize_i8(const float *x, int8_t *q, int64_t n, int64_t chunk,
                         const float *scales, float levels, uint64_t key, int stochastic);
/* out[i] (+)= q[i] * f[c], f[c] = (float)(scales[c] * alpha / levels) (double maths) */
void dtnn_cx_dequantize_i8(const int8_t *q, float *out, int64_t n, int64_t chunk,
                           const float *scales, double alpha, double levels, int accumulate);

/* TernGrad: t = sign(x) * [u(i) < |x| / scales[i / chunk]]; 2-bit codes (0: 0, 1: +1,
 * 2: -1), 4 per byte, element 4j+b in bits 2b..2b+1 of byte j; chunk: a multiple of 4 */
void dtnn_cx_terngrad_quantize(const float *x, uint8_t *packed, int64_t n, const float *scales,
                               int64_t chunk, uint64_t key);
/* out[i] (+)= t[i] * (scales[i / chunk] * alpha) */
void dtnn_cx_terngrad_dequantize(const uint8_t *packed, float *out, int64_t n,
                                 const float *scales, int64_t chunk, float alpha, int accumulate);

/* e[i] += x[i] (if x) and return sum |e[i]| (blocked double sum) */
double dtnn_cx_add_l1(const float *x, float *e, int64_t n);
/* sign bits: bit b of byte j = (c[8j+b] >= 0); values[i / chunk] is the magnitude of
 * element i (chunk: a multiple of 8); with ef: c[i] -= values[i / chunk] * (+-1) */
void dtnn_cx_sign_pack(float *c, uint8_t *bits, int64_t n, const float *values, int64_t chunk,
                       int ef);
/* out[i] (+)= (bit ? 1 : -1) * (values[i / chunk] * alpha) */
/* add_l1 (if x) + chunk_norms(l1) / length + sign_pack in one pass per chunk */
void dtnn_cx_sign_encode(const float *x, float *c, int64_t n, int64_t chunk, float *values,
                         uint8_t *bits, int ef);
void dtnn_cx_sign_unpack(const uint8_t *bits, float *out, int64_t n, const float *values,
                         int64_t chunk, float alpha, int accumulate);
/* elements [s0, e0) of an int8 (kind 0) / TernGrad (1) / sign (2) payload into
 * out[0 .. e0 - s0): mode 0 out = v, 1 out += v, 2 out = base + v */
void dtnn_cx_decode_window(int kind, const uint8_t *codes, const float *scales, int64_t chunk,
                           double alpha, double levels, int64_t s0, int64_t e0,
                           const float *base, float *out, int mode);
/* one quantised-ring hop: payload of (decoded pin, if not NULL) + our n elements,
 * read from np pieces (piece k = elements [bounds[k], bounds[k+1]) at ptrs[k]),
 * encoded chunk by chunk in L1 into pout: kind 0 int8/QSGD-8 (norm 0 L2, 1 max),
 * 1 TernGrad, 2 sign (res: error-feedback residual or NULL).  The same bits as
 * decode + add + chunk_norms + quantize / sign_encode.  0, or -1 unsupported. */
int dtnn_cx_qring_hop(int kind, int norm, const uint8_t *pin, int64_t n, int64_t chunk,
                      float levels, int stochastic, uint64_t key, int64_t np,
                      const int64_t *bounds, float *const *ptrs, float *res, uint8_t *pout);
/* a whole payload (scales + codes) decoded into its pieces: out = alpha * v */
void dtnn_cx_decode_pieces(int kind, const uint8_t *payload, int64_t n, int64_t chunk,
                           double alpha, double levels, int64_t np, const int64_t *bounds,
                           float *const *ptrs);

/* top-k by magnitude of c (after c += x if x): idx ascending, val = c[idx]; among
 * equal magnitudes at the threshold the lowest indices win; zero != 0 sets the
 * selected c[idx] = 0 (error feedback).  A sampled threshold and one fused pass that
 * collects the candidates, or (small n, large k, or a misjudged sample) radix
 * selection on the float bits; no sort.  Returns the number selected (= k), -1 if
 * out of memory. */
int64_t dtnn_cx_topk(const float *x, float *c, int64_t n, int64_t k, int32_t *idx,
                     float *val, int zero);
/* out[idx[j]] += alpha * val[j] */
void dtnn_cx_scatter_add(const int32_t *idx, const float *val, int64_t k, float alpha,
                         float *out);
/* c += x (if x); val[j] = c[idx[j]]; zero != 0: c[idx[j]] = 0 */
void dtnn_cx_gather(const float *x, float *c, int64_t n, const int32_t *idx, int64_t k,
                    float *val, int zero);

#endif
