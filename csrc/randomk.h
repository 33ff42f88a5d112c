/* random-k with error feedback over a unit scattered in ranges of a flat vector: see
 * randomk.c. */
#ifndef DTNN_RANDOMK_H
#define DTNN_RANDOMK_H

#include <stdint.h>

/* The unit is the concatenation of flat[starts[i] : starts[i] + lens[i]].  In one pass
 * over it: res += x (res indexed by the unit); if move, x = 0; then, for the sorted
 * unit indices idx[0..k), payload[j] = res[idx[j]], res[idx[j]] = 0 and
 * flat_idx[j] = the flat index of idx[j].  Returns -1 if idx is not sorted or out of
 * the unit (nothing is guaranteed about the outputs then), else 0. */
int dtnn_rk_encode(float *res, float *flat, const int64_t *starts, const int64_t *lens,
                   int64_t nranges, const int32_t *idx, int64_t k, float *payload,
                   int32_t *flat_idx, int move);

#endif
