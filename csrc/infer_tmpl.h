/*
 * Bodies of the inference kernels (csrc/infer.c), instantiated once per vector width.
 * Before including: VW (floats per vector: 16, 8 or 4), PV (pixel vectors per block of
 * the pixel kernel), SFX (name suffix) and TGT (the target attribute of that path).  GCC/clang vector extensions: the compiler
 * maps a VW-float vector onto the registers of the target of the function the body is
 * inlined into (one zmm, one ymm or one xmm), so one source serves every ISA path.
 */
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define VF CAT(vf_, SFX)
#define VFU CAT(vfu_, SFX)
#define VI CAT(vi_, SFX)

typedef float VF __attribute__((vector_size(VW * 4)));
typedef float VFU __attribute__((vector_size(VW * 4), aligned(4)));
typedef int32_t VI __attribute__((vector_size(VW * 4)));

/* Lanes [lo, hi) of v to base[lo..hi): a masked store on the vector paths (masked-off
 * lanes are neither written nor faulted on), lane by lane otherwise. */
TGT static inline __attribute__((always_inline)) void
CAT(store_lanes_, SFX)(float *base, VF v, int lo, int hi)
{
#if VW == 16
    const __mmask16 m = (__mmask16)(((1u << hi) - 1u) & ~((1u << lo) - 1u));
    _mm512_mask_storeu_ps(base, m, (__m512)v);
#elif VW == 8
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i m = _mm256_and_si256(_mm256_cmpgt_epi32(lane, _mm256_set1_epi32(lo - 1)),
                                       _mm256_cmpgt_epi32(_mm256_set1_epi32(hi), lane));
    _mm256_maskstore_ps(base, m, (__m256)v);
#else
    float lanes[VW];
    memcpy(lanes, &v, sizeof lanes);
    for (int l = lo; l < hi; ++l) base[l] = lanes[l];
#endif
}

/* act(v + b) on a whole vector (compares give lane masks of all ones / zeros). */
TGT static inline __attribute__((always_inline)) VF
CAT(act_vec_, SFX)(VF v, int act, float a)
{
    const VF zero = (VF){0};
    if (act == DTNN_ACT_RELU) {
        return (VF)((VI)v & (VI)(v > zero));
    } else if (act == DTNN_ACT_RELU6) {
        const VF six = zero + 6.0f;
        const VI pos = (VI)(v > zero), big = (VI)(v < six);
        return (VF)((((VI)v & big) | ((VI)six & ~big)) & pos);
    } else if (act == DTNN_ACT_PRELU) {
        const VI pos = (VI)(v > zero);
        return (VF)(((VI)v & pos) | ((VI)(v * a) & ~pos));
    }
    return v;
}

/* One block of PV*VW consecutive virtual outputs q0.. (q = ho*Wp + wo) of output
 * channels kb*8 .. kb*8 + 7 of one image; see dtnn_infer_conv_px_f32.  A vector's
 * lanes fall on one or more output rows: each row's run of valid lanes (wo < Wo) is one
 * masked store. */
TGT static inline __attribute__((always_inline)) void
CAT(px_block_, SFX)(const float *xp, const float *wb, const float *bias, const float *alpha,
                    int act, float *y, int64_t C, int64_t plane, int64_t Wp, int64_t K,
                    int64_t R, int64_t S, int64_t dh, int64_t dw, int64_t Ho, int64_t Wo,
                    int64_t kb, int64_t q0)
{
    VF acc[PV][DTNN_INFER_PX_KB];
    for (int v = 0; v < PV; ++v)
        for (int j = 0; j < DTNN_INFER_PX_KB; ++j) acc[v][j] = (VF){0};
    const float *wk = wb;
    for (int64_t c = 0; c < C; ++c) {
        const float *xc = xp + c * plane + q0;
        for (int64_t r = 0; r < R; ++r) {
            const float *xr = xc + r * dh * Wp;
            for (int64_t s = 0; s < S; ++s, wk += DTNN_INFER_PX_KB) {
                const float *xa = xr + s * dw;
                VF xv[PV];
                for (int v = 0; v < PV; ++v) xv[v] = *(const VFU *)(xa + v * VW);
                for (int j = 0; j < DTNN_INFER_PX_KB; ++j) {
                    const float wj = wk[j];
                    for (int v = 0; v < PV; ++v) acc[v][j] += xv[v] * wj;
                }
            }
        }
    }
    /* epilogue: bias, activation, the valid lanes into NCHW */
    const int64_t k0 = kb * DTNN_INFER_PX_KB, P = Ho * Wo;
    const int jn = (int)((K - k0) < DTNN_INFER_PX_KB ? (K - k0) : DTNN_INFER_PX_KB);
    for (int v = 0; v < PV; ++v) {
        const int64_t qv = q0 + v * VW;
        /* the rows this vector covers: segments [lo, hi) of lanes -> y + base + lane */
        int seg_lo[VW], seg_hi[VW], nseg = 0;
        int64_t seg_base[VW];
        for (int64_t ho = qv / Wp; ho < Ho && ho * Wp < qv + VW; ++ho) {
            const int64_t a = ho * Wp > qv ? ho * Wp : qv;
            const int64_t b = ho * Wp + Wo < qv + VW ? ho * Wp + Wo : qv + VW;
            if (b <= a) continue;
            seg_lo[nseg] = (int)(a - qv);
            seg_hi[nseg] = (int)(b - qv);
            seg_base[nseg] = ho * Wo - ho * Wp + qv;   /* y index of lane 0 */
            ++nseg;
        }
        for (int j = 0; j < jn; ++j) {
            const int64_t k = k0 + j;
            const VF out = CAT(act_vec_, SFX)(acc[v][j] + bias[k], act,
                                              act == DTNN_ACT_PRELU ? alpha[k] : 0.0f);
            float *yk = y + k * P;
            for (int sgi = 0; sgi < nseg; ++sgi)
                CAT(store_lanes_, SFX)(yk + seg_base[sgi], out, seg_lo[sgi], seg_hi[sgi]);
        }
    }
}

/* Outputs of one pixel, channels [k0, k0 + nv*VW): see dtnn_infer_conv_ch_f32. */
TGT static inline __attribute__((always_inline)) void
CAT(ch_pixel_, SFX)(const float *xn, const float *wck, const float *bias, const float *alpha,
                    int act, float *yp, int64_t C, int64_t H, int64_t W, int64_t K,
                    int64_t Kp, int64_t R, int64_t S, int64_t h0, int64_t w0, int64_t dh,
                    int64_t dw, int64_t P, int64_t r_lo, int64_t r_hi, int64_t s_lo,
                    int64_t s_hi, int64_t k0)
{
    enum { NV = 4 };
    VF acc[NV];
    for (int v = 0; v < NV; ++v) acc[v] = *(const VFU *)(bias + k0 + v * VW);
    for (int64_t c = 0; c < C; ++c) {
        const float *xc = xn + c * H * W;
        for (int64_t r = r_lo; r < r_hi; ++r) {
            const float *xr = xc + (h0 + r * dh) * W + w0;
            const float *wr = wck + ((c * R + r) * S) * Kp + k0;
            for (int64_t s = s_lo; s < s_hi; ++s) {
                const float xs = xr[s * dw];
                const float *ws = wr + s * Kp;
                for (int v = 0; v < NV; ++v) acc[v] += *(const VFU *)(ws + v * VW) * xs;
            }
        }
    }
    for (int v = 0; v < NV; ++v) {
        float lanes[VW];
        memcpy(lanes, &acc[v], sizeof lanes);
        for (int l = 0; l < VW; ++l) {
            const int64_t k = k0 + v * VW + l;
            if (k < K)
                yp[k * P] = act_apply(lanes[l], act, act == DTNN_ACT_PRELU ? alpha[k] : 0.0f);
        }
    }
}

/* The same for one vector of channels (the tail after the blocks of NV vectors). */
TGT static inline __attribute__((always_inline)) void
CAT(ch_pixel1_, SFX)(const float *xn, const float *wck, const float *bias, const float *alpha,
                     int act, float *yp, int64_t C, int64_t H, int64_t W, int64_t K,
                     int64_t Kp, int64_t R, int64_t S, int64_t h0, int64_t w0, int64_t dh,
                     int64_t dw, int64_t P, int64_t r_lo, int64_t r_hi, int64_t s_lo,
                     int64_t s_hi, int64_t k0)
{
    VF acc = *(const VFU *)(bias + k0);
    for (int64_t c = 0; c < C; ++c) {
        const float *xc = xn + c * H * W;
        for (int64_t r = r_lo; r < r_hi; ++r) {
            const float *xr = xc + (h0 + r * dh) * W + w0;
            const float *wr = wck + ((c * R + r) * S) * Kp + k0;
            for (int64_t s = s_lo; s < s_hi; ++s)
                acc += *(const VFU *)(wr + s * Kp) * xr[s * dw];
        }
    }
    float lanes[VW];
    memcpy(lanes, &acc, sizeof lanes);
    for (int l = 0; l < VW; ++l) {
        const int64_t k = k0 + l;
        if (k < K)
            yp[k * P] = act_apply(lanes[l], act, act == DTNN_ACT_PRELU ? alpha[k] : 0.0f);
    }
}

/* Every output pixel of image n (its channels in blocks of 4 vectors, then single
 * vectors); taps outside the image are skipped. */
TGT static inline __attribute__((always_inline)) void
CAT(ch_image_, SFX)(const float *xn, const float *wck, const float *bias, const float *alpha,
                    int act, float *yn, int64_t C, int64_t H, int64_t W, int64_t K,
                    int64_t Kp, int64_t R, int64_t S, int64_t sh, int64_t sw, int64_t ph,
                    int64_t pw, int64_t dh, int64_t dw, int64_t Ho, int64_t Wo,
                    int64_t p_lo, int64_t p_hi)
{
    const int64_t P = Ho * Wo;
    for (int64_t p = p_lo; p < p_hi; ++p) {
        const int64_t ho = p / Wo, wo = p - ho * Wo;
        const int64_t h0 = ho * sh - ph, w0 = wo * sw - pw;
        int64_t r_lo, r_hi, s_lo, s_hi;
        tap_range(h0, H, R, dh, &r_lo, &r_hi);
        tap_range(w0, W, S, dw, &s_lo, &s_hi);
        int64_t k0 = 0;
        for (; k0 + 4 * VW <= Kp; k0 += 4 * VW)
            CAT(ch_pixel_, SFX)(xn, wck, bias, alpha, act, yn + p, C, H, W, K, Kp, R, S, h0,
                                w0, dh, dw, P, r_lo, r_hi, s_lo, s_hi, k0);
        for (; k0 < K; k0 += VW)
            CAT(ch_pixel1_, SFX)(xn, wck, bias, alpha, act, yn + p, C, H, W, K, Kp, R, S, h0,
                                 w0, dh, dw, P, r_lo, r_hi, s_lo, s_hi, k0);
    }
}

#undef VF
#undef VFU
#undef VI
