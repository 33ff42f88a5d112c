/*
 * Pointwise (1x1, stride 1, no padding) backward-weights over one chunk of one image's
 * pixels, shared by the ISA files (im2col_fused_avx2.c, im2col_fused_avx512.c); only
 * the register tile differs.  Included once per ISA file, after it defines
 *   PW_TARGET        the function's target attribute,
 *   PW_NAME          the function's name,
 *   PW_K, PW_C       the tile: output channels x input channels,
 *   PW_CASES         PW_CASE(k, c) for every 1 <= k <= PW_K, 1 <= c <= PW_C,
 *   pw_tile(...)     the register tile (constant kn, cn after inlining),
 *   pw_rowsum(...)   the sum of np floats of nimg rows sd apart in 16 lanes, reduced
 *                    like pw_tile's sums.
 * No include guard: each inclusion makes its own function.
 *
 * Over a block of nimg images (x and dy sx and sd floats apart):
 *   dw[k*ldw + c] += sum_(m, p) dy[m*sd + k*ldd + p] * x[m*sx + c*ldx + p]
 *   db[k] += sum_(m, p) dy[m*sd + k*ldd + p]          (when db is not NULL)
 * for k < nk, c < C, p < np.  Each output is one chain of FMAs per pixel lane
 * (p mod the path's lanes), images in order, reduced once per block, whatever the
 * tile: any split of the channels gives the same floats (db: 16 lanes on both paths).
 * (Blocks of images amortise the tile's start and reduction on small images.)
 */
PW_TARGET static void PW_NAME(const float *x, int64_t ldx, int64_t sx, int64_t C,
                              const float *dy, int64_t ldd, int64_t sd, int64_t nimg,
                              int64_t nk, int64_t np, float *dw, int64_t ldw, float *db)
{
    const int64_t ncb = (C + PW_C - 1) / PW_C;
    int64_t k0, c0;
    /* k-block outer: its dy rows stay in L1 while the input-channel blocks sweep them
     * (x's chunk stays in L2).  Each sweep prefetches 1/ncb of the next k-block's rows,
     * so only the first block of a call waits for dy from memory. */
    for (k0 = 0; k0 < nk; k0 += PW_K) {
        const int kn = nk - k0 < PW_K ? (int)(nk - k0) : PW_K;
        const int64_t kx = nk - k0 - kn < PW_K ? nk - k0 - kn : PW_K;
        const int64_t rowb = np * (int64_t)sizeof(float), nbytes = nimg * kx * rowb;
        const float *d = dy + k0 * ldd;
        int k;
        for (c0 = 0; c0 < C; c0 += PW_C) {
            const int cn = C - c0 < PW_C ? (int)(C - c0) : PW_C;
            const int64_t cb = c0 / PW_C;
            int64_t b;
            for (b = nbytes * cb / ncb; b < nbytes * (cb + 1) / ncb; b += 64) {
                const int64_t row = b / rowb;   /* image row / kx, channel row % kx */
                _mm_prefetch((const char *)(dy + row / kx * sd + (k0 + kn + row % kx) * ldd)
                             + b % rowb, _MM_HINT_T0);
            }
#define PW_CASE(K_, C_) case K_ * 8 + C_: pw_tile(K_, C_, x + c0 * ldx, ldx, sx, d, ldd, sd, nimg, np, dw + k0 * ldw + c0, ldw); break;
            switch (kn * 8 + cn) {
                PW_CASES
            }
#undef PW_CASE
        }
        if (db != NULL)
            for (k = 0; k < kn; ++k)
                db[k0 + k] += pw_rowsum(d + k * ldd, sd, nimg, np);
    }
}
