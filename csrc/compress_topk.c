/*
 * Top-k / sparse kernels of the gradient compressors (see compress.h for the contract
 * and dtnn/compress/twins.py for the numpy twins they are tested against): exact top-k
 * by magnitude with error feedback (a radix histogram, or a sampled threshold), and the
 * sparse scatter-add / gather.  The shared dispatch and the contraction setting are in
 * compress_impl.h.
 */
#include "compress_impl.h"

/* ---------------------------------------------------------------- top-k / sparse */
static int nthreads_for(int64_t n)
{
#ifdef _OPENMP
    return n >= DTNN_CX_MIN_WORK ? omp_get_max_threads() : 1;
#else
    (void)n;
    return 1;
#endif
}

/* find the bin holding the need-th largest (counting from the top); *above = count in
 * higher bins */
static uint32_t find_bin(const uint32_t *hist, int64_t need, int64_t *above)
{
    int64_t acc = 0;
    int32_t b;
    for (b = 65535; b > 0; --b) {
        if (acc + (int64_t)hist[b] >= need)
            break;
        acc += hist[b];
    }
    *above = acc;
    return (uint32_t)b;
}

static int64_t topk_hist(const float *RESTRICT x, float *RESTRICT c, int64_t n, int64_t k,
                         int32_t *RESTRICT idx, float *RESTRICT val, int zero)
{
    int64_t i;
    if (k <= 0) {
        if (x != NULL)
            for (i = 0; i < n; ++i)
                c[i] += x[i];
        return 0;
    }
    if (k > n)
        k = n;
    const int nt = nthreads_for(n);
    uint32_t *hist = (uint32_t *)calloc((size_t)nt * 65536u, sizeof(uint32_t));
    if (hist == NULL)
        return -1;
    /* pass A: (c += x) and histogram of the high 16 bits of |c| */
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
#ifdef _OPENMP
        uint32_t *h = hist + (size_t)omp_get_thread_num() * 65536u;
#else
        uint32_t *h = hist;
#endif
        int64_t j;
#pragma omp for schedule(static)
        for (j = 0; j < n; ++j) {
            if (x != NULL)
                c[j] += x[j];
            h[(f2u(c[j]) & 0x7fffffffu) >> 16]++;
        }
    }
    int t;
    for (t = 1; t < nt; ++t)
        for (i = 0; i < 65536; ++i)
            hist[i] += hist[(size_t)t * 65536u + i];
    int64_t above;
    const uint32_t hi = find_bin(hist, k, &above);
    const int64_t need = k - above;
    /* pass B: histogram of the low 16 bits inside bin hi */
    memset(hist, 0, (size_t)nt * 65536u * sizeof(uint32_t));
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
#ifdef _OPENMP
        uint32_t *h = hist + (size_t)omp_get_thread_num() * 65536u;
#else
        uint32_t *h = hist;
#endif
        int64_t j;
#pragma omp for schedule(static)
        for (j = 0; j < n; ++j) {
            const uint32_t a = f2u(c[j]) & 0x7fffffffu;
            if ((a >> 16) == hi)
                h[a & 0xffffu]++;
        }
    }
    for (t = 1; t < nt; ++t)
        for (i = 0; i < 65536; ++i)
            hist[i] += hist[(size_t)t * 65536u + i];
    int64_t above2;
    const uint32_t lo = find_bin(hist, need, &above2);
    free(hist);
    const uint32_t thr = (hi << 16) | lo;
    int64_t ties = need - above2;
    /* pass C: collect in index order */
    int64_t m = 0;
    for (i = 0; i < n; ++i) {
        const uint32_t a = f2u(c[i]) & 0x7fffffffu;
        if (a > thr || (a == thr && ties > 0)) {
            ties -= (a == thr);
            idx[m] = (int32_t)i;
            val[m] = c[i];
            if (zero)
                c[i] = 0.0f;
            ++m;
        }
    }
    return m;
}

/* the r-th largest (0-based) of a[0..m); a and b (m elements each) are scratch.
 * Quickselect with an out-of-place, branch-free three-way partition (> p to the
 * front of b, < p to the back, == p dropped): no mispredicted compares on random
 * keys, and runs of equal keys end it at once. */
static uint32_t select_desc(uint32_t *a, uint32_t *b, int64_t m, int64_t r)
{
    while (m > 1) {
        const uint32_t x = a[0], y = a[m / 2], z = a[m - 1];
        const uint32_t p = x < y ? (y < z ? y : (x < z ? z : x)) : (x < z ? x : (y < z ? z : y));
        int64_t i, ng = 0, nl = 0;
        for (i = 0; i < m; ++i) {
            const uint32_t v = a[i];
            b[ng] = v;
            b[m - 1 - nl] = v;
            ng += v > p;
            nl += v < p;
        }
        uint32_t *const done = a;
        if (r < ng) {
            a = b;
            m = ng;
        } else if (r < m - nl) {
            return p;
        } else {
            a = b + (m - nl);
            r -= m - nl;
            m = nl;
        }
        b = done;
    }
    return a[0];
}

/* sample size: n / 256 within [TOPK_SAMPLE_MIN, TOPK_SAMPLE]: a larger sample gives a
 * tighter threshold (fewer candidates), worth its strided loads on large buffers */
#define TOPK_SAMPLE_MIN 4096
#define TOPK_SAMPLE 16384
#define TOPK_SUB 256  /* elements per flag block of the collection pass (in L1) */

/* c[j] = v = c[j] + x[j] (if x); flag[j] = |v| >= t (as bits); vectorises */
CX_INLINE void tk_flag(const float *RESTRICT x, float *RESTRICT c, int64_t m, uint32_t t,
                       uint8_t *RESTRICT flag)
{
    int64_t j;
    if (x != NULL)
        for (j = 0; j < m; ++j) {
            const float v = c[j] + x[j];
            c[j] = v;
            flag[j] = (f2u(v) & 0x7fffffffu) >= t;
        }
    else
        for (j = 0; j < m; ++j)
            flag[j] = (f2u(c[j]) & 0x7fffffffu) >= t;
}

/* append the flagged elements of one block (flags zero from len on): candidates are
 * rare (a few %), so flags are tested 8 at a time as one word and appended
 * branch-free inside a word */
CX_INLINE int64_t tk_append(const float *RESTRICT c, const uint8_t *RESTRICT flag, int64_t s,
                            int64_t len, int32_t *RESTRICT cidx, uint32_t *RESTRICT cval,
                            int64_t m)
{
    int64_t w, b;
    for (w = 0; w < len; w += 8) {
        uint64_t word;
        memcpy(&word, flag + w, 8);
        if (word == 0)
            continue;
        for (b = w; b < w + 8; ++b) {
            cidx[m] = (int32_t)(s + b);
            cval[m] = f2u(c[s + (b < len ? b : 0)]);
            m += flag[b];
        }
    }
    return m;
}

/* The collection pass over [lo, hi): c += x (if x), and the indices and values (as
 * bits) of the elements with |c| >= t in index order; with zero, those are cleared
 * in c right away (the block is in L1; the few not finally selected are restored
 * later, which is cheaper than clearing the selected ones at random places
 * afterwards).  If a block might not fit into cap, collection stops (*full = 1: the
 * m collected are cleared, the rest is not) and only c += x is completed. */
CX_INLINE int64_t tk_collect_body(const float *RESTRICT x, float *RESTRICT c, int64_t lo,
                                  int64_t hi, uint32_t t, int32_t *RESTRICT cidx,
                                  uint32_t *RESTRICT cval, int64_t cap, int zero, int *full)
{
    uint8_t flag[TOPK_SUB];
    int64_t s, j, m = 0;
    *full = 0;
    for (s = lo; s < hi; s += TOPK_SUB) {
        const int64_t len = hi - s < TOPK_SUB ? hi - s : TOPK_SUB;
        if (!*full && m > cap - TOPK_SUB)
            *full = 1;
        if (*full) {
            if (x != NULL)
                tk_flag(x + s, c + s, len, 0xffffffffu, flag);
            continue;
        }
        tk_flag(x != NULL ? x + s : NULL, c + s, len, t, flag);
        memset(flag + len, 0, (size_t)(TOPK_SUB - len));
        m = tk_append(c, flag, s, len, cidx, cval, m);
        if (zero)
            for (j = 0; j < len; ++j)
                c[s + j] = flag[j] ? 0.0f : c[s + j];
    }
    return m;
}
CX_CLONES_R(int64_t, tk_collect, (const float *RESTRICT x, float *RESTRICT c, int64_t lo,
                                  int64_t hi, uint32_t t, int32_t *RESTRICT cidx,
                                  uint32_t *RESTRICT cval, int64_t cap, int zero, int *full),
            (x, c, lo, hi, t, cidx, cval, cap, zero, full))

/* threshold bits t that k plus a margin of the n elements of |c + x| reach, from a
 * strided sample of ns: the r-th largest sample value with r = f + 5 sqrt(f) + 8
 * (f = ns k / n), about 5 standard deviations of the sample quantile above f, so
 * (for data in random order) fewer than k elements reach t only with probability
 * ~1e-5; 0 if the sample cannot tell (k too large) */
static uint32_t tk_sample_threshold(const float *x, const float *c, int64_t n, int64_t k)
{
    uint32_t sample[2 * TOPK_SAMPLE];  /* the sample and select_desc's scratch */
    const int64_t ns = n / 256 < TOPK_SAMPLE_MIN ? TOPK_SAMPLE_MIN
                       : (n / 256 > TOPK_SAMPLE ? TOPK_SAMPLE : n / 256);
    const int64_t stride = n / ns;
    const double fs = (double)k / (double)n * (double)ns;
    const int64_t r = (int64_t)(fs + 5.0 * sqrt(fs) + 8.0);
    int64_t i;
    if (r >= ns)
        return 0;
    for (i = 0; i < ns; ++i) {
        const int64_t p = i * stride;
        sample[i] = f2u(x != NULL ? c[p] + x[p] : c[p]) & 0x7fffffffu;
    }
    return select_desc(sample, sample + ns, ns, r);
}

/* idx/val of the k largest |value| among the m candidates (index order, so idx
 * ascends), ties at the threshold to the lowest indices.  Branch-free (whether a
 * candidate is taken is unpredictable): the taken ones are compacted to the front
 * of cidx/cval, the others to scratch, from where zero (candidates were cleared)
 * restores them.  scratch: 2 m words. */
static int64_t tk_take(float *c, int32_t *cidx, uint32_t *cval, int64_t m, int64_t k,
                       int32_t *idx, float *val, int zero, uint32_t *scratch)
{
    int64_t j, above = 0, out = 0, rest = 0;
    for (j = 0; j < m; ++j)
        scratch[j] = cval[j] & 0x7fffffffu;
    const uint32_t thr = select_desc(scratch, scratch + m, m, k - 1);
    for (j = 0; j < m; ++j)
        above += (cval[j] & 0x7fffffffu) > thr;
    int64_t ties = k - above;
    int32_t *ridx = (int32_t *)scratch;
    uint32_t *rval = scratch + m;
    for (j = 0; j < m; ++j) {  /* out <= rest + out <= j: no entry is overwritten unread */
        const int32_t p = cidx[j];
        const uint32_t v = cval[j], a = v & 0x7fffffffu;
        const int64_t tie = a == thr && ties > 0;
        const int64_t take = (a > thr) | tie;
        ties -= tie;
        cidx[out] = p;
        cval[out] = v;
        ridx[rest] = p;
        rval[rest] = v;
        out += take;
        rest += 1 - take;
    }
    memcpy(idx, cidx, (size_t)out * sizeof(int32_t));
    memcpy(val, cval, (size_t)out * sizeof(float));
    if (zero)
        for (j = 0; j < rest; ++j)
            c[ridx[j]] = u2f(rval[j]);
    return out;
}

/* tk_collect over nt contiguous ranges in parallel, thread i into cidx/cval + i cap;
 * the results are then concatenated in index order.  Returns the number m of
 * candidates; *full if some thread ran out of room. */
static int64_t tk_collect_all(const float *x, float *c, int64_t n, uint32_t t, int32_t *cidx,
                              uint32_t *cval, int64_t cap, int zero, int nt, int *full)
{
    int64_t *mt = (int64_t *)malloc(2 * (size_t)nt * sizeof(int64_t));
    int64_t m = 0;
    int team = 1, id;
    if (mt == NULL)
        return -1;
    (void)cx_has_avx2();
    (void)cx_has_avx512();
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        int me = 0, f;
#ifdef _OPENMP
        me = omp_get_thread_num();
        if (me == 0)
            team = omp_get_num_threads();
#pragma omp barrier
#endif
        const int64_t nblk = (n + TOPK_SUB - 1) / TOPK_SUB;
        const int64_t lo = nblk * me / team * TOPK_SUB, hi = nblk * (me + 1) / team * TOPK_SUB;
        const size_t off = (size_t)me * (size_t)cap;
        mt[me] = tk_collect_run(x, c, lo < n ? lo : n, hi < n ? hi : n, t, cidx + off,
                                cval + off, cap, zero, &f);
        mt[nt + me] = f;
    }
    *full = 0;
    for (id = 0; id < team; ++id) {  /* mt <= cap: stays clear of later threads' data */
        memmove(cidx + m, cidx + (size_t)id * (size_t)cap, (size_t)mt[id] * sizeof(int32_t));
        memmove(cval + m, cval + (size_t)id * (size_t)cap, (size_t)mt[id] * sizeof(uint32_t));
        m += mt[id];
        *full |= (int)mt[nt + id];
    }
    free(mt);
    return m;
}

/* Sampling selection: a strided sample of |c + x| gives a threshold t that k plus a
 * margin of the elements reach; one fused pass does c += x and collects the
 * candidates >= t in index order; the exact k-th largest is then found among the
 * candidates.  Every element >= the true k-th largest is a candidate as long as at
 * least k elements are, so the result is exactly topk_hist's; if the sample
 * misjudged (fewer than k or too many candidates), the candidates are restored and
 * topk_hist runs on c (= c + x by then). */
int64_t dtnn_cx_topk(const float *RESTRICT x, float *RESTRICT c, int64_t n, int64_t k,
                     int32_t *RESTRICT idx, float *RESTRICT val, int zero)
{
    if (k <= 0 || k >= n || n < 8 * TOPK_SAMPLE_MIN)
        return topk_hist(x, c, n, k, idx, val, zero);
    const uint32_t t = tk_sample_threshold(x, c, n, k);
    if (t == 0)
        return topk_hist(x, c, n, k, idx, val, zero);
    /* per thread: candidate indices and values (cap each); then tk_take's scratch */
    const int nt = nthreads_for(n);
    const int64_t cap = (4 * k + 4096 < n ? 4 * k + 4096 : n) + TOPK_SUB;
    const size_t ncap = (size_t)nt * (size_t)cap;
    uint32_t *buf = (uint32_t *)malloc((2 * ncap + 2 * (size_t)cap) * sizeof(uint32_t));
    if (buf == NULL)
        return topk_hist(x, c, n, k, idx, val, zero);
    int32_t *cidx = (int32_t *)buf;
    uint32_t *cval = buf + ncap;
    int64_t j, out;
    int full = 0;
    const int64_t m = tk_collect_all(x, c, n, t, cidx, cval, cap, zero, nt, &full);
    if (m < 0) {  /* out of memory before anything was changed */
        free(buf);
        return topk_hist(x, c, n, k, idx, val, zero);
    }
    if (full || m > cap || m < k) {
        if (zero)
            for (j = 0; j < m; ++j)
                c[cidx[j]] = u2f(cval[j]);
        out = topk_hist(NULL, c, n, k, idx, val, zero);  /* c is c + x by now */
    } else {
        out = tk_take(c, cidx, cval, m, k, idx, val, zero, buf + 2 * ncap);
    }
    free(buf);
    return out;
}

void dtnn_cx_scatter_add(const int32_t *RESTRICT idx, const float *RESTRICT val, int64_t k,
                         float alpha, float *RESTRICT out)
{
    int64_t j;
    /* indices are distinct within one payload: no two iterations touch one element */
#pragma omp parallel for schedule(static) if (k >= DTNN_CX_MIN_WORK)
    for (j = 0; j < k; ++j)
        out[idx[j]] += alpha * val[j];
}

void dtnn_cx_gather(const float *RESTRICT x, float *RESTRICT c, int64_t n,
                    const int32_t *RESTRICT idx, int64_t k, float *RESTRICT val, int zero)
{
    int64_t i, j;
    if (x != NULL) {
#pragma omp parallel for schedule(static) if (n >= DTNN_CX_MIN_WORK)
        for (i = 0; i < n; ++i)
            c[i] += x[i];
    }
    for (j = 0; j < k; ++j) {
        val[j] = c[idx[j]];
        if (zero)
            c[idx[j]] = 0.0f;
    }
}
