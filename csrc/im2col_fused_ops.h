/*
 * The ISA-specific pieces of the fused convolution kernels (internal to
 * csrc/im2col_fused*.c).  The driver (im2col_fused.c, baseline ISA) does the blocking,
 * padding and offsets; everything that touches vectors goes through one of these
 * tables: im2col_fused_avx512.c (16-lane zmm) and im2col_fused_avx2.c (8-lane ymm).
 *
 * Shared layouts (all 64-byte aligned, k-tiles of FUSED_KT = 64 output channels,
 * padded to a multiple of 16 with zeros):
 *   W^T  [g][k-tile][row j][64]      row j = channel i * taps + tap t
 *   Y^T  [k-tile][pixel q][64]
 *   dY^T [g][k-tile][pixel q][64]
 *   dW^T [g][row j][Kgp]
 */
#ifndef DTNN_IM2COL_FUSED_OPS_H
#define DTNN_IM2COL_FUSED_OPS_H

#include <stdint.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#define FUSED_KT 64      /* output channels per k-tile */
#define FUSED_ROWS 6     /* pixels (forward) / (channel, tap) rows (bwd-w) per micro-tile */

typedef struct {
    const char *name;
    /* dst[j*ldd + i] = src[i*lds + j] for i < ni, j < nj (both <= 16).  Rows j >= nj of
     * dst are not written; lanes ni..15 of each written row are set to 0 when
     * full_rows, else left alone.  ldd may be negative. */
    void (*tr_block)(const float *src, int64_t lds, int64_t ni, int64_t nj, float *dst,
                     int64_t ldd, int full_rows);
    /* dst[i*P + p] = src[p*lds + i] (+ bias[i] when bias != NULL), p < np, i < nk
     * (both <= 16): a 16 x 16 block of Y^T into NCHW */
    void (*store_y)(const float *src, int64_t lds, int64_t np, int64_t nk,
                    const float *bias, float *dst, int64_t P);
    /* forward micro-tiles t0 .. t1-1 (FUSED_ROWS pixels each; Qb pixels in the block)
     * of one k-tile with nv (1..4) vectors of 16 channels, over reduction rows
     * [0, nj) of a chunk: y[q][k] (+)= sum_j xg[jo[j] + pidx[q]] * wt[j][k];
     * yt is the k-tile's Y^T, acc: add to what is there */
    void (*fw_tiles)(int nv, const float *xg, const int64_t *jo, int64_t nj,
                     const int32_t *pidx, int64_t Qb, int64_t t0, int64_t t1,
                     const float *wt, float *yt, int acc);
    /* backward-weights micro-tile: FUSED_ROWS (channel, tap) rows (rows < FUSED_ROWS
     * valid) x nv vectors of 16 channels, summed over Q pixels:
     * c[i][k] (+)= sum_q xr[i][pidx[q]] * d[q][k]; acc: add to c */
    void (*bw_tile)(int nv, const float *const *xr, const int32_t *pidx, int64_t Q,
                    const float *d, float *c, int64_t ldc, int rows, int acc);
    /* reduction rows per forward chunk (the chunk of W^T the micro-tiles keep in L1) */
    int64_t fw_chunk;
    /* Direct kernels for short reductions (first layers: J = Cg*R*S small, stride_w 1),
     * output pixels in vectors along a row, NCHW in and out.  xp: one zero-padded
     * image's channels of a group (plane offsets in jo), output row ho reads from
     * xp + ho*rs (rs = stride_h * padded width); reading may run up to 15 floats past
     * the last plane (zeroed slack).  For k < nk, P = Ho*Wo:
     *   dfw: y[k*P + ho*Wo + wo] = bias[k] (0 if NULL) + sum_j wk[k*J + j] * xp[jo[j] + ho*rs + wo]
     *   dbw: dw[k*J + j] += sum_(ho, wo) dy[k*P + ho*Wo + wo] * xp[jo[j] + ho*rs + wo]
     * Each output's sum runs in a fixed order whatever nk (results do not depend on how
     * the channels are split between calls). */
    void (*dfw_image)(const float *xp, int64_t rs, const int64_t *jo, int64_t J,
                      const float *wk, const float *bias, int64_t nk, float *y,
                      int64_t Ho, int64_t Wo);
    void (*dbw_image)(const float *xp, int64_t rs, const int64_t *jo, int64_t J,
                      const float *dy, int64_t nk, int64_t Ho, int64_t Wo, float *dw);
    /* Pointwise (1x1, stride 1, no padding) backward-weights over np pixels of a block
     * of nimg images, dy and x read in place (rows ldd / ldx apart, images sd / sx
     * apart), pixel lanes (AVX2 8, AVX-512 16) (m < nimg, k < nk, c < C, p < np):
     *   dw[k*ldw + c] += sum_(m, p) dy[m*sd + k*ldd + p] * x[m*sx + c*ldx + p]
     *   db[k] += sum_(m, p) dy[m*sd + k*ldd + p]              (when db != NULL)
     * Each output's sum runs in a fixed order whatever nk (the dW of the two paths
     * differ in rounding; db is summed in 16 lanes on both: the same floats). */
    void (*pw_bw)(const float *x, int64_t ldx, int64_t sx, int64_t C, const float *dy,
                  int64_t ldd, int64_t sd, int64_t nimg, int64_t nk, int64_t np, float *dw,
                  int64_t ldw, float *db);
} dtnn_fused_ops;

/* The direct kernels' sums run in one order on every ISA path (16 pixel lanes, like
 * AVX-512; AVX2 keeps two 8-lane halves): they are chosen for rows that fill 3/4 of
 * their 16-pixel vectors whatever the path, so a layer's floats do not depend on it. */
#define FUSED_DIRECT_VL 16

#if (defined(__GNUC__) || defined(__clang__)) && defined(__x86_64__)
#define DTNN_FUSED_X86 1
extern const dtnn_fused_ops dtnn_fused_ops_avx512;
extern const dtnn_fused_ops dtnn_fused_ops_avx2;

#else
#define DTNN_FUSED_X86 0
#endif

/* the drivers' integer helpers: ceil(a / b) for a >= 0, b > 0; min; max */
static inline int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
static inline int64_t imin(int64_t a, int64_t b) { return a < b ? a : b; }
static inline int64_t imax(int64_t a, int64_t b) { return a > b ? a : b; }

/* The drivers' thread split (im2col_fused.c, im2col_fused_live.c).  Every output
 * element is computed by one thread in a fixed order: the split decides which thread
 * computes it, never its floats. */

/* Threads a parallel region opened here gets: 1 inside another region (the kernels
 * do not nest), else OpenMP's maximum; 1 without OpenMP. */
static inline int64_t fused_max_threads(void)
{
#ifdef _OPENMP
    return omp_in_parallel() ? 1 : omp_get_max_threads();
#else
    return 1;
#endif
}

/* The calling thread's number in its team, and the team's size (0 and 1 outside a
 * parallel region or without OpenMP). */
static inline int64_t fused_thread_num(void)
{
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

static inline int64_t fused_num_threads(void)
{
#ifdef _OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}

/* Items [lo, hi) of n: part i of parts contiguous ranges, in order, sizes within 1 */
typedef struct {
    int64_t lo, hi;
} fused_range;

static inline fused_range fused_part(int64_t n, int64_t i, int64_t parts)
{
    fused_range r;
    r.lo = n * i / parts;
    r.hi = n * (i + 1) / parts;
    return r;
}

/* the calling thread's part of n items in its team */
static inline fused_range fused_share(int64_t n)
{
    return fused_part(n, fused_thread_num(), fused_num_threads());
}

/* Live-tap blocks (im2col_fused_live.c): blocks of B >= 6 small images laid out with
 * the images innermost, computing only the products that read real pixels.  Whether a
 * convolution whose channel-major blocks hold B images runs them instead: */
int dtnn_fused_live_mode(int64_t B, int64_t H, int64_t W, int64_t R, int64_t S,
                         int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh,
                         int64_t dwl, int64_t Ho, int64_t Wo);
/* the forward and backward-weights with those blocks, in the channel-major kernels'
 * workspace (B: their block size); same contracts as dtnn_conv_fwd_f32 / bww_run */
void dtnn_fused_live_fwd(const dtnn_fused_ops *ops,
    const float *x, const float *w, const float *bias, float *y,
    int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
    int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dwl,
    int64_t Ho, int64_t Wo, int64_t G,
    int64_t w_gs, int64_t w_so, int64_t w_si, int64_t w_st, float *ws, int64_t B);
void dtnn_fused_live_bww(const dtnn_fused_ops *ops, const float *x, const float *dy,
    float *dw, int64_t N, int64_t C, int64_t H, int64_t W, int64_t K, int64_t R, int64_t S,
    int64_t sh, int64_t sw, int64_t ph, int64_t pw, int64_t dh, int64_t dwl,
    int64_t Ho, int64_t Wo, int64_t G, float *ws, int serial, int64_t B);

#endif /* DTNN_IM2COL_FUSED_OPS_H */
