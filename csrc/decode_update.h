/*
 * The quantised ring's final decode fused into the SGD update (dist.fuse_update):
 * the averaged gradient of a chunk, held as its final payload (scales + codes, the
 * format of dtnn_cx_decode_pieces), is decoded block by block into an L1 buffer and
 * the optimizer's update of the same elements runs on that buffer, so the decoded
 * gradient is never written to memory.  Same bits as dtnn_cx_decode_pieces into the
 * flat gradient followed by dtnn_sgd_update_f32 on it (both are elementwise).
 */
#ifndef DTNN_DECODE_UPDATE_H
#define DTNN_DECODE_UPDATE_H

#include <stdint.h>

/* kind 0 int8 / QSGD-8, 1 TernGrad, 2 sign; payload of n elements, chunk, alpha,
 * levels as dtnn_cx_decode_pieces.  Pieces: element [bounds[k], bounds[k+1]) of the
 * chunk is element offs[k] + (i - bounds[k]) of p, mask and buf (bounds[0] = 0,
 * bounds[np] = n).  The SGD scalars are dtnn_sgd_update_f32's. */
void dtnn_decode_sgd_pieces(int kind, const uint8_t *payload, int64_t n, int64_t chunk,
                            double alpha, double levels, int64_t np, const int64_t *bounds,
                            const int64_t *offs, float *p, const float *mask, float *buf,
                            float neg_lr, int has_wd, float wd, int has_momentum, float mom,
                            int has_dampening, float one_minus_damp, int nesterov, int first);

#endif
