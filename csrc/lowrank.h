/* PowerSGD's passes over a unit's matrices, batched: one call per unit and phase.
 *
 * A unit holds n matrices; matrix i is M_i (rows[i] x cols[i], row-major) at
 * m + m_off[i], its rank is ranks[i].  P and Q of all matrices are concatenated in
 * matrix order: P_i (rows x r) and Q_i (cols x r), row-major, exactly the layout of
 * PowerSGD's two payloads.  Deterministic: the same inputs give the same bits at any
 * OpenMP thread count (rows are independent; the sums over rows run in row order). */
#ifndef DTNN_LOWRANK_H
#define DTNN_LOWRANK_H

#include <stdint.h>

/* M_i += G_i (g != NULL; G_i at g + g_off[i]), then P_i = M_i Q_i: one pass over M. */
int dtnn_lr_encode(float *m, const int64_t *m_off, const float *g, const int64_t *g_off,
                   int64_t n, const int64_t *rows, const int64_t *cols,
                   const int64_t *ranks, const float *q, float *p);

/* Modified Gram-Schmidt on the columns of every P_i, in place (column norm below eps:
 * divided by eps). */
void dtnn_lr_orthonormalize(float *p, int64_t n, const int64_t *rows,
                            const int64_t *ranks, float eps);

/* Q_i = M_i^T P_i; then, if ef, M_i -= P_i Q_i^T (the error-feedback residual). */
int dtnn_lr_round2(float *m, const int64_t *m_off, int64_t n, const int64_t *rows,
                   const int64_t *cols, const int64_t *ranks, const float *p, float *q,
                   int ef);

/* OUT_i = alpha * P_i Q_i^T (written, not added). */
int dtnn_lr_decode(float *out, const int64_t *out_off, int64_t n, const int64_t *rows,
                   const int64_t *cols, const int64_t *ranks, const float *p,
                   const float *q, float alpha);

#endif
