/*
 * dtnn bit-packing kernels: signed integers of B bits (1 <= B <= 8) in a dense
 * bit stream, plain C99 (+ optional OpenMP).
 *
 * The numpy twins in dtnn/compress/bitpack_twins.py are the contract; the Cython
 * wrapper dtnn/_kernels/_bitpack.pyx validates arguments, these functions trust them.
 *
 * Layout
 *   Element i is stored as the low B bits of its two's complement (code = q & mask)
 *   in bits [i*B, i*B + B) of a little-endian bit stream: stream bit k is bit k % 8
 *   of byte k / 8.  So every 8 elements fill exactly B bytes, the stream has
 *   ceil(n * B / 8) bytes and the unused high bits of the last byte are 0.
 *   Unpacking sign-extends the B-bit code, so levels in [-2^(B-1), 2^(B-1) - 1]
 *   round-trip exactly; other values keep only their low B bits.
 *
 * Work is split into blocks of DTNN_BP_BLOCK elements (a multiple of 8, i.e. whole
 * bytes of the stream), run in parallel when n >= DTNN_BP_MIN_WORK; results do not
 * depend on the thread count.
 */
#ifndef DTNN_BITPACK_H
#define DTNN_BITPACK_H

#include <stdint.h>

#define DTNN_BP_BLOCK ((int64_t)8192)
#define DTNN_BP_MIN_WORK ((int64_t)65536)

/* bytes of the packed stream of n elements of `bits` bits */
int64_t dtnn_bp_packed_size(int64_t n, int bits);

/* packed[0 .. packed_size) = the B-bit stream of q[0 .. n) */
void dtnn_bp_pack(const int8_t *q, uint8_t *packed, int64_t n, int bits);

/* q[0 .. n) = the sign-extended codes of the stream */
void dtnn_bp_unpack(const uint8_t *packed, int8_t *q, int64_t n, int bits);

/* out[i] (+)= (float)q[i] * f[c], c = i / chunk, f[c] = (float)(scales[c] * alpha /
 * levels) computed in double, q[i] the unpacked level: the same float32 arithmetic
 * as unpacking and then dequantising the int8 levels (dtnn_cx_dequantize_i8) */
void dtnn_bp_dequantize(const uint8_t *packed, float *out, int64_t n, int bits,
                        int64_t chunk, const float *scales, double alpha, double levels,
                        int accumulate);

#endif
