/* Adam with low-precision state, included once per dtype by lowp_simd.c with
 *   T        float or double (the param's dtype; the arithmetic's)
 *   SUF      f32 or f64
 *   SQRT     sqrtf or sqrt
 *
 * The update is adam_body.h's, operation for operation; only the loads and
 * stores of m, v (and AMSGrad's max) differ:
 *
 * bfloat16: m and v are read as bfloat16 (exact in T), updated in T, and
 *   stored by stochastic rounding ((float)x, then adamcore_bf16_round with
 *   the element's hash bits: the high 16 for m, the low 16 for v). p is
 *   updated from the unrounded m and v. AMSGrad's max is the larger of the
 *   stored max and the stored (rounded) v, both bfloat16, so it needs no
 *   rounding of its own and p uses it.
 * int8: per block of ADAMCORE_QBLOCK elements, m and v are dequantized
 *   (code value * absmax, in float32), updated in T and p from them; then
 *   each state's new absmax (the largest |x|, NaN if any x is NaN: a max of
 *   the magnitudes' bit patterns) is stored and each x encoded as
 *   (float)x / absmax (x itself when absmax is 0). AMSGrad's max is
 *   dequantized with the unsigned map, maxed with the unquantized v (p uses
 *   it), and quantized again like v.
 * One block is always stepped whole by one thread: the split falls on block
 * edges, so the result does not depend on the thread count.
 */
#define LP_CAT_(a, b) a##_##b
#define LP_CAT(a, b) LP_CAT_(a, b)
#define LP_SCALARS LP_CAT(adamcore_scalars, SUF)

/* The elements [lo, hi) of a tensor with bfloat16 state. */
static ADAMCORE_ALWAYS_INLINE void
LP_CAT(bf16_loop, SUF)(T *restrict p, const T *restrict g, uint16_t *restrict m,
                       uint16_t *restrict v, uint16_t *restrict vmax, int64_t lo, int64_t hi,
                       const LP_SCALARS *s, uint64_t key, const int maximize,
                       const int amsgrad, const int wd_mode)
{
    const T b1 = s->b1, omb1 = s->omb1, b2 = s->b2, omb2 = s->omb2;
    const T eps = s->eps, dscale = s->dscale, step_size = s->step_size;
    const T wd = s->wd, decay = s->decay, gscale = s->gscale;
    const uint32_t klo = (uint32_t)key, khi = (uint32_t)(key >> 32);
    for (int64_t i = lo; i < hi; i++) {
        T gi = g[i] * gscale;
        T pi = p[i];
        if (maximize) gi = -gi;
        if (wd_mode == ADAMCORE_WD_COUPLED) gi = gi + wd * pi;
        if (wd_mode == ADAMCORE_WD_DECOUPLED) pi = pi * decay;
        const T mi = b1 * (T)adamcore_bf16_value(m[i]) + omb1 * gi;
        T vi = b2 * (T)adamcore_bf16_value(v[i]) + omb2 * (gi * gi);
        const uint32_t r = adamcore_element_bits(klo, khi, i);
        m[i] = adamcore_bf16_round((float)mi, r >> 16);
        const uint16_t vb = adamcore_bf16_round((float)vi, r & 0xffffu);
        v[i] = vb;
        if (amsgrad) {  /* np.maximum of the stored values: NaN propagates, a tie gives v */
            const float mx = adamcore_bf16_value(vmax[i]), vs = adamcore_bf16_value(vb);
            const int keep = mx > vs || mx != mx;
            vmax[i] = keep ? vmax[i] : vb;
            vi = (T)(keep ? mx : vs);
        }
        const T denom = SQRT(vi) * dscale + eps;
        p[i] = pi - step_size * (mi / denom);
    }
}

/* The magnitude's bit pattern as an unsigned integer: ordered like |x|, NaN
 * above infinity. */
static ADAMCORE_ALWAYS_INLINE uint32_t LP_CAT(mag_bits, SUF)(T x)
{
    return adamcore_f32_bits((float)x) & 0x7fffffffu;
}

/* One block (n <= ADAMCORE_QBLOCK elements) of a tensor with 8-bit state;
 * the codes and the block's absmax are updated in place. */
static ADAMCORE_ALWAYS_INLINE void
LP_CAT(q8_block, SUF)(T *restrict p, const T *restrict g, uint8_t *restrict cm,
                      uint8_t *restrict cv, uint8_t *restrict cx, float *am, float *av,
                      float *ax, int64_t n, const LP_SCALARS *s, const adamcore_qmap *qs,
                      const adamcore_qmap *qu, const int maximize, const int amsgrad,
                      const int wd_mode)
{
    const T b1 = s->b1, omb1 = s->omb1, b2 = s->b2, omb2 = s->omb2;
    const T eps = s->eps, dscale = s->dscale, step_size = s->step_size;
    const T wd = s->wd, decay = s->decay, gscale = s->gscale;
    const float *restrict sval = qs->values;
    const float *restrict uval = qu->values;
    const float sm = *am, sv = *av, sx = amsgrad ? *ax : 0.0f;
    float nm[ADAMCORE_QBLOCK], nv[ADAMCORE_QBLOCK], nx[ADAMCORE_QBLOCK];  /* the new m, v, max */
    uint32_t mm = 0, mv = 0, mx = 0;
    for (int64_t i = 0; i < n; i++) {
        T gi = g[i] * gscale;
        T pi = p[i];
        if (maximize) gi = -gi;
        if (wd_mode == ADAMCORE_WD_COUPLED) gi = gi + wd * pi;
        if (wd_mode == ADAMCORE_WD_DECOUPLED) pi = pi * decay;
        const T mi = b1 * (T)(sval[cm[i]] * sm) + omb1 * gi;
        T vi = b2 * (T)(uval[cv[i]] * sv) + omb2 * (gi * gi);
        nm[i] = (float)mi;
        nv[i] = (float)vi;
        const uint32_t bm = LP_CAT(mag_bits, SUF)(mi), bv = LP_CAT(mag_bits, SUF)(vi);
        mm = bm > mm ? bm : mm;
        mv = bv > mv ? bv : mv;
        if (amsgrad) {
            const T xo = (T)(uval[cx[i]] * sx);
            vi = (xo > vi || xo != xo) ? xo : vi;
            nx[i] = (float)vi;
            const uint32_t bx = LP_CAT(mag_bits, SUF)(vi);
            mx = bx > mx ? bx : mx;
        }
        const T denom = SQRT(vi) * dscale + eps;
        p[i] = pi - step_size * (mi / denom);
    }
    const float am_new = adamcore_f32_of(mm), av_new = adamcore_f32_of(mv);
    *am = am_new;
    *av = av_new;
    const float dm = am_new != 0.0f ? am_new : 1.0f, dv = av_new != 0.0f ? av_new : 1.0f;
    const uint32_t *restrict sb = qs->buckets;
    const uint32_t *restrict ub = qu->buckets;
    for (int64_t i = 0; i < n; i++) {
        cm[i] = adamcore_encode(sb, nm[i] / dm);
        cv[i] = adamcore_encode(ub, nv[i] / dv);
    }
    if (amsgrad) {
        const float ax_new = adamcore_f32_of(mx);
        const float dx = ax_new != 0.0f ? ax_new : 1.0f;
        *ax = ax_new;
        for (int64_t i = 0; i < n; i++) cx[i] = adamcore_encode(ub, nx[i] / dx);
    }
}

static ADAMCORE_ALWAYS_INLINE void
LP_CAT(bf16_chunk, SUF)(const adamcore_tensor *t, int64_t b0, int64_t b1, const void *scalars,
                        uint64_t key, const int maximize, const int amsgrad, const int wd_mode)
{
    const int64_t lo = b0 * ADAMCORE_QBLOCK;
    const int64_t hi = b1 * ADAMCORE_QBLOCK < t->n ? b1 * ADAMCORE_QBLOCK : t->n;
    LP_CAT(bf16_loop, SUF)((T *)t->param, (const T *)t->grad, (uint16_t *)t->state[0],
                           (uint16_t *)t->state[1], (uint16_t *)t->state[2], lo, hi,
                           (const LP_SCALARS *)scalars, key, maximize, amsgrad, wd_mode);
}

static ADAMCORE_ALWAYS_INLINE void
LP_CAT(q8_chunk, SUF)(const adamcore_tensor *t, int64_t b0, int64_t b1, const void *scalars,
                      uint64_t key, const int maximize, const int amsgrad, const int wd_mode)
{
    (void)key;
    const adamcore_qmap *q = adamcore_qmaps();
    for (int64_t b = b0; b < b1; b++) {
        const int64_t lo = b * ADAMCORE_QBLOCK;
        const int64_t n = t->n - lo < ADAMCORE_QBLOCK ? t->n - lo : ADAMCORE_QBLOCK;
        LP_CAT(q8_block, SUF)((T *)t->param + lo, (const T *)t->grad + lo,
                              (uint8_t *)t->state[0] + lo, (uint8_t *)t->state[1] + lo,
                              amsgrad ? (uint8_t *)t->state[2] + lo : NULL,
                              t->absmax[0] + b, t->absmax[1] + b,
                              amsgrad ? t->absmax[2] + b : NULL, n,
                              (const LP_SCALARS *)scalars, &q[0], &q[1], maximize, amsgrad,
                              wd_mode);
    }
}

/* The runtime variant resolved to one of the 12 specialised bodies. */
#define LP_DISPATCH(name)                                                                 \
    static ADAMCORE_ALWAYS_INLINE void LP_CAT(name##_dispatch, SUF)(                       \
        const adamcore_tensor *t, int64_t b0, int64_t b1, const void *s, uint64_t key,     \
        int variant)                                                                       \
    {                                                                                      \
        switch (variant) {                                                                 \
            LP_CASE(name, 0, 0, 0) LP_CASE(name, 1, 0, 0) LP_CASE(name, 0, 1, 0)            \
            LP_CASE(name, 1, 1, 0) LP_CASE(name, 0, 0, 1) LP_CASE(name, 1, 0, 1)            \
            LP_CASE(name, 0, 1, 1) LP_CASE(name, 1, 1, 1) LP_CASE(name, 0, 0, 2)            \
            LP_CASE(name, 1, 0, 2) LP_CASE(name, 0, 1, 2) LP_CASE(name, 1, 1, 2)            \
            default: break;                                                                \
        }                                                                                  \
    }
#define LP_CASE(name, mx, ams, wd)                                                        \
    case ADAMCORE_VARIANT(mx, ams, wd):                                                    \
        LP_CAT(name##_chunk, SUF)(t, b0, b1, s, key, mx, ams, wd);                          \
        break;
LP_DISPATCH(bf16)
LP_DISPATCH(q8)
#undef LP_CASE
#undef LP_DISPATCH
#undef LP_SCALARS
