/*
 * The quantised ring's hop and final decode (contract: compress.h).  The hop runs
 * compress.c's range bodies (through the cx_* dispatchers declared in compress_impl.h)
 * on the same element indices as the separate kernels, so its payload has their bits.
 */
#include "compress_impl.h"

/* ---------------------------------------------------------------- quantised-ring hop
 * One hop of the quantised ring in one call: the incoming partial sum of a chunk is
 * decoded, our own elements are added (read straight from the flat gradient's
 * pieces) and the sum is encoded again for the next rank, one compressor chunk at a
 * time in an L1 buffer, so the fp32 partial sum is never written to memory.  The
 * same range bodies run on the same element indices (RNG counters, chunk starts) as
 * copy + decode_window + chunk_norms + quantize / sign_encode, so the payload (and
 * sign's residual) has the same bits as that sequence.
 *
 * Pieces: np pieces tile [0, n); piece k holds elements [bounds[k], bounds[k+1]) at
 * ptrs[k].  kind 0: int8 / QSGD-8 (norm 0 = L2, 1 = max; stochastic or nearest),
 * 1: TernGrad, 2: sign (res: error-feedback residual of the n elements, or NULL).
 * pin NULL: no incoming payload (our chunk alone: the ring's first send).
 * Chunks larger than DTNN_CX_BLOCK (int8's one scale per unit, TernGrad's chunk=0)
 * take two passes over blocks (the norm, then the codes) and decode twice; sign
 * supports chunks <= DTNN_CX_BLOCK (returns -1 otherwise, nothing written). */
static void hop_gather(float *RESTRICT tmp, int64_t s, int64_t e, int64_t np,
                       const int64_t *bounds, float *const *ptrs)
{
    int64_t lo = 0, hi = np - 1, g = s, k;
    while (lo < hi) {  /* the last piece starting at or before s */
        const int64_t mid = (lo + hi + 1) / 2;
        if (bounds[mid] <= s)
            lo = mid;
        else
            hi = mid - 1;
    }
    for (k = lo; g < e && k < np; ++k) {
        const int64_t pe = bounds[k + 1] < e ? bounds[k + 1] : e;
        if (pe > g)
            memcpy(tmp + (g - s), ptrs[k] + (g - bounds[k]), (size_t)(pe - g) * sizeof(float));
        g = pe > g ? pe : g;
    }
}

/* tmp[0 .. e-s) = ours + decoded incoming, elements [s, e) (inside one block) */
static void hop_load(int kind, const uint8_t *pin, int64_t nc, int64_t chunk, double levels,
                     float *RESTRICT tmp, int64_t s, int64_t e, int64_t np,
                     const int64_t *bounds, float *const *ptrs)
{
    hop_gather(tmp, s, e, np, bounds, ptrs);
    if (pin == NULL)
        return;
    const float *scales = (const float *)pin;
    const uint8_t *codes = pin + 4 * nc;
    CX_CHUNKED(s, e, chunk, {
        if (kind == 0)
            cx_dq8w((const int8_t *)codes + cs, tmp + (cs - s), NULL, ce - cs,
                     (float)((double)scales[ck] / levels), 1);
        else
            cx_window_packed(kind, codes, cs, ce, scales[ck], s, NULL, tmp, 1);
    });
}

/* encode tmp = elements [s, s + m) of chunk ck whose scale is sc (int8, TernGrad) */
static void hop_codes(int kind, float *RESTRICT tmp, int64_t s, int64_t m, float sc,
                      float levels, int stochastic, uint32_t k0, uint32_t k1, uint8_t *codes)
{
    if (kind == 0) {
        const float inv = sc > 0.0f ? levels / sc : 0.0f;
        cx_q8(tmp, (int8_t *)codes + s, m, (uint32_t)s, inv, levels, k0, k1, stochastic);
        return;
    }
    const float inv = sc > 0.0f ? 1.0f / sc : 0.0f;
    const int64_t whole = m / 4;
    if (whole)
        cx_tq(tmp, codes + s / 4, whole, (uint32_t)s, inv, k0, k1);
    if (m % 4) {  /* only the unit's last element(s) */
        uint32_t byte = 0;
        int64_t i;
        for (i = 4 * whole; i < m; ++i)
            byte |= tern_code(tmp[i], inv, (uint32_t)(s + i), k0, k1) << (2 * (i - 4 * whole));
        codes[s / 4 + whole] = (uint8_t)byte;
    }
}

/* sign's chunk [s, s + m) with value = mean |c|, as dtnn_cx_sign_encode's loop */
static void hop_sign(float *RESTRICT tmp, float *res, int64_t s, int64_t m, int64_t ck,
                     float *values, uint8_t *bits)
{
    float *c = res != NULL ? res + s : tmp;
    const double r = res != NULL ? cx_add_abs(tmp, c, m) : cx_sum_abs(tmp, m);
    const float value = (float)r / (float)m;
    const int ef = res != NULL;
    const int64_t whole = m / 8;
    int64_t i;
    values[ck] = value;
    if (whole)
        cx_sp(c, bits + s / 8, whole, value, ef);
    if (m % 8) {
        uint32_t byte = 0;
        for (i = 8 * whole; i < m; ++i) {
            byte |= (uint32_t)(c[i] >= 0.0f) << (i - 8 * whole);
            if (ef)
                c[i] -= c[i] >= 0.0f ? value : -value;
        }
        bits[s / 8 + whole] = (uint8_t)byte;
    }
}

int dtnn_cx_qring_hop(int kind, int norm, const uint8_t *pin, int64_t n, int64_t chunk,
                      float levels, int stochastic, uint64_t key, int64_t np,
                      const int64_t *bounds, float *const *ptrs, float *res, uint8_t *pout)
{
    if (n <= 0)
        return 0;
    if (chunk < 1 || kind < 0 || kind > 2 || (kind == 2 && (chunk > DTNN_CX_BLOCK || chunk % 8))
        || (kind == 1 && chunk % 4) || np < 1 || bounds[0] != 0 || bounds[np] != n)
        return -1;
    const int64_t nc = (n + chunk - 1) / chunk;
    float *scales = (float *)pout;
    uint8_t *codes = pout + 4 * nc;
    uint32_t k0, k1;
    int64_t k;
    cx_stream(key, &k0, &k1);
    (void)cx_has_avx2();
    (void)cx_has_avx512();
    if (chunk <= DTNN_CX_BLOCK) {
        /* one pass per chunk: load, norm, codes while the chunk is in L1 */
#pragma omp parallel for schedule(static) if (n >= DTNN_CX_MIN_WORK)
        for (k = 0; k < nc; ++k) {
            float tmp[DTNN_CX_BLOCK];
            const int64_t s = k * chunk, m = (s + chunk <= n) ? chunk : n - s;
            hop_load(kind, pin, nc, chunk, levels, tmp, s, s + m, np, bounds, ptrs);
            if (kind == 2) {
                hop_sign(tmp, res, s, m, k, scales, codes);
                continue;
            }
            const int nk = kind == 0 ? norm : 1;
            const double r = cx_block_norm(tmp, m, nk);
            const float sc = (float)(nk == 0 ? sqrt(r) : r);
            scales[k] = sc;
            hop_codes(kind, tmp, s, m, sc, levels, stochastic, k0, k1, codes);
        }
        return 0;
    }
    /* large chunks: per chunk, the blocks' norms (combined as reduce_range does), then
     * the codes block by block (the blocks decoded a second time) */
    for (k = 0; k < nc; ++k) {
        const int64_t s = k * chunk, m = (s + chunk <= n) ? chunk : n - s;
        const int64_t nb = (m + DTNN_CX_BLOCK - 1) / DTNN_CX_BLOCK;
        const int nk = kind == 0 ? norm : 1;
        double *part = (double *)malloc((size_t)nb * sizeof(double));
        int64_t b;
        if (part == NULL)
            return -2;
#pragma omp parallel for schedule(static) if (m >= DTNN_CX_MIN_WORK)
        for (b = 0; b < nb; ++b) {
            float tmp[DTNN_CX_BLOCK];
            const int64_t bs = s + b * DTNN_CX_BLOCK;
            const int64_t bm = (bs + DTNN_CX_BLOCK <= s + m) ? DTNN_CX_BLOCK : s + m - bs;
            hop_load(kind, pin, nc, chunk, levels, tmp, bs, bs + bm, np, bounds, ptrs);
            part[b] = cx_block_norm(tmp, bm, nk);
        }
        double r = 0.0;
        if (nb == 1)
            r = part[0];
        else
            for (b = 0; b < nb; ++b)
                r = nk == 1 ? (part[b] > r ? part[b] : r) : r + part[b];
        free(part);
        const float sc = (float)(nk == 0 ? sqrt(r) : r);
        scales[k] = sc;
#pragma omp parallel for schedule(static) if (m >= DTNN_CX_MIN_WORK)
        for (b = 0; b < nb; ++b) {
            float tmp[DTNN_CX_BLOCK];
            const int64_t bs = s + b * DTNN_CX_BLOCK;
            const int64_t bm = (bs + DTNN_CX_BLOCK <= s + m) ? DTNN_CX_BLOCK : s + m - bs;
            hop_load(kind, pin, nc, chunk, levels, tmp, bs, bs + bm, np, bounds, ptrs);
            hop_codes(kind, tmp, bs, bm, sc, levels, stochastic, k0, k1, codes);
        }
    }
    return 0;
}

/* The final payload of a chunk decoded into its pieces: out = alpha * v, one call
 * for all pieces (the same bits as decode_window on each). */
void dtnn_cx_decode_pieces(int kind, const uint8_t *payload, int64_t n, int64_t chunk,
                           double alpha, double levels, int64_t np, const int64_t *bounds,
                           float *const *ptrs)
{
    const int64_t nc = (n + chunk - 1) / chunk;
    int64_t k;
    for (k = 0; k < np; ++k)
        if (bounds[k + 1] > bounds[k])
            dtnn_cx_decode_window(kind, payload + 4 * nc, (const float *)payload, chunk, alpha,
                                  levels, bounds[k], bounds[k + 1], NULL, ptrs[k], 0);
}
