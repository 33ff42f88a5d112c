/*
 * Counter-based random numbers (dtnn/rng/): Philox4x64-10 (Salmon, Moraes, Dror, Shaw,
 * "Parallel random numbers: as easy as 1, 2, 3", SC 2011).  A number is a pure function
 * of (key, counter), so any rank or thread computes word j of a stream without drawing
 * words 0..j-1 first, and every rank that uses the same key and counter gets the same
 * bits.  numpy's twins in dtnn/rng/twins.py give the same bits; numpy's own
 * np.random.Philox (the same function) is the tests' independent oracle.
 *
 * A stream is (key0, key1; c1, c2, c3): word j of it is output word j % 4 of
 * Philox4x64-10 applied to the counter (j / 4, c1, c2, c3) under the key (key0, key1).
 * Callers put what identifies a draw (step, tensor, rank, ...) into c1..c3 and the seed
 * and purpose into the key.
 */
#ifndef DTNN_RNG_H
#define DTNN_RNG_H

#include <stdint.h>

/* One Philox4x64-10 block: out[0..3] from ctr[0..3] under key[0..1]. */
void dtnn_philox4x64_10(const uint64_t ctr[4], const uint64_t key[2], uint64_t out[4]);

/* Words start .. start + n - 1 of the stream into out (OpenMP above a size). */
void dtnn_rng_u64(uint64_t key0, uint64_t key1, uint64_t c1, uint64_t c2, uint64_t c3,
                  int64_t start, int64_t n, uint64_t *out);

/* n float32 uniforms in [0, 1): out[i] = (w_i >> 8) * 2^-24 where w_i is 32-bit word
 * start + i of the stream, the 64-bit word j giving 32-bit words 2j (its low half) and
 * 2j + 1 (its high half).  Every value is a multiple of 2^-24, exactly representable. */
void dtnn_rng_uniform_f32(uint64_t key0, uint64_t key1, uint64_t c1, uint64_t c2,
                          uint64_t c3, int64_t start, int64_t n, float *out);

/* A uniformly random k-subset of [0, n), in increasing order, into out[0..k-1]
 * (0 <= k <= n <= 2^31).  Every k-subset is equally likely:
 *   m = k if 2k <= n else n - k values are drawn: the stream's words in order, each
 *   mapped to [0, n) without bias by Lemire's multiply-shift (word w gives
 *   floor(w * n / 2^64), rejected when (w * n) mod 2^64 < 2^64 mod n), and the first m
 *   distinct values kept; the subset is those values (2k <= n) or the others.
 * Cost: about m words plus a pass over an n-bit map.  Returns 0, or -1 when the bit map
 * cannot be allocated. */
int dtnn_rng_sample_sorted(uint64_t key0, uint64_t key1, uint64_t c1, uint64_t c2,
                           uint64_t c3, int64_t n, int64_t k, int32_t *out);

#endif
