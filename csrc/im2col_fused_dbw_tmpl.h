/*
 * The direct path's backward-weights sweep over one image, shared by the ISA files
 * (im2col_fused_avx2.c, im2col_fused_avx512.c): the blocking and the prefetching are
 * the same on both, only the register tile differs.  Included once per ISA file, after
 * it defines
 *   DBW_TARGET       the function's target attribute,
 *   DBW_IMAGE_NAME   the function's name,
 *   DB_K, DB_J       the tile: output channels x (channel, tap) rows,
 *   DBW_CASES        DBW_CASE(k, j) for every 1 <= k <= DB_K, 1 <= j <= DB_J,
 *   dbw_tile(...)    the register tile (constant kn, jn after inlining).
 * No include guard: each inclusion makes its own function.
 */
DBW_TARGET static void DBW_IMAGE_NAME(const float *xp, int64_t rs, const int64_t *jo,
                                      int64_t J, const float *dy, int64_t nk, int64_t Ho,
                                      int64_t Wo, float *dw)
{
    const int64_t P = Ho * Wo;
    int64_t k0, j0;
    const int64_t njb = (J + DB_J - 1) / DB_J;
    /* k-block outer: its dy rows stay in L1 while the (channel, tap) blocks sweep them.
     * Each sweep prefetches 1/njb of the next k-block's rows: only the first sweep
     * reads dy from memory, and its rows are whole 4 KiB pages at 32x32, which the
     * hardware prefetchers only pick up after a few misses each (measured 3->64 at
     * 32x32: ~40% of the time waiting on dy without it) */
    for (k0 = 0; k0 < nk; k0 += DB_K) {
        const int kn = nk - k0 < DB_K ? (int)(nk - k0) : DB_K;
        const int64_t kx = nk - k0 - kn < DB_K ? nk - k0 - kn : DB_K;
        const char *nx = (const char *)(dy + (k0 + kn) * P);
        const int64_t nbytes = kx * P * (int64_t)sizeof(float);
        for (j0 = 0; j0 < J; j0 += DB_J) {
            const int jn = J - j0 < DB_J ? (int)(J - j0) : DB_J;
            const float *d = dy + k0 * P;
            float *c = dw + k0 * J + j0;
            int64_t b;
            for (b = nbytes * (j0 / DB_J) / njb; b < nbytes * (j0 / DB_J + 1) / njb; b += 64)
                _mm_prefetch(nx + b, _MM_HINT_T0);
#define DBW_CASE(K_, J_) case K_ * 8 + J_: dbw_tile(K_, J_, xp, jo + j0, J, d, rs, Ho, Wo, c); break;
            switch (kn * 8 + jn) {
                DBW_CASES
            }
#undef DBW_CASE
        }
    }
}
