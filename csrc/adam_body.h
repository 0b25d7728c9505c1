/* The dtype-generic Adam loop, included once per dtype by adam_simd.c with
 *   T        float or double
 *   SUF      f32 or f64
 *   SQRT     sqrtf or sqrt
 *
 * Design:
 * - One pass over memory: each element's p, g, m, v (and vmax) is read once
 *   and p, m, v (and vmax) written once; no temporaries, no allocation.
 * - The options are compile-time constants of an always_inline body, so each
 *   of the 12 variants is its own loop with no branch inside. The body has no
 *   target attribute: it is inlined into one wrapper per SIMD level, which
 *   decides the vector width.
 * - Every operation is a single IEEE-rounded +, -, *, / or sqrt, in a fixed
 *   order, built with -ffp-contract=off: vector body, scalar tail, any thread
 *   split and adamcore/reference.py give the same bits.
 * - The state arrays are allocated at the param's offset mod 64, so peeling
 *   until p is 64-byte aligned aligns every state stream at once.
 */
#define ADAM_CAT_(a, b) a##_##b
#define ADAM_CAT(a, b) ADAM_CAT_(a, b)
#define ADAM_LOOP ADAM_CAT(adam_loop, SUF)
#define ADAM_CHUNK ADAM_CAT(adam_chunk, SUF)
#define ADAM_SCALARS ADAM_CAT(adamcore_scalars, SUF)

static ADAMCORE_ALWAYS_INLINE void
ADAM_LOOP(T *restrict p, const T *restrict g, T *restrict m, T *restrict v,
          T *restrict vmax, int64_t n, const ADAM_SCALARS *s,
          const int maximize, const int amsgrad, const int wd_mode)
{
    const T b1 = s->b1, omb1 = s->omb1, b2 = s->b2, omb2 = s->omb2;
    const T eps = s->eps, dscale = s->dscale, step_size = s->step_size;
    const T wd = s->wd, decay = s->decay, gscale = s->gscale;
    for (int64_t i = 0; i < n; i++) {
        T gi = g[i] * gscale;                                   /* g = g * grad_scale */
        T pi = p[i];
        if (maximize) gi = -gi;                                 /* g = -g */
        if (wd_mode == ADAMCORE_WD_COUPLED) gi = gi + wd * pi;  /* g = g + wd*p */
        if (wd_mode == ADAMCORE_WD_DECOUPLED) pi = pi * decay;  /* p = p * (1 - lr*wd) */
        const T mi = b1 * m[i] + omb1 * gi;                     /* m = b1*m + (1-b1)*g */
        T vi = b2 * v[i] + omb2 * (gi * gi);                    /* v = b2*v + (1-b2)*(g*g) */
        m[i] = mi;
        v[i] = vi;
        if (amsgrad) {                                          /* vmax = np.maximum(vmax, v): NaN */
            const T mx = vmax[i];                               /* propagates, a tie (+0, -0) gives v */
            vi = (mx > vi || mx != mx) ? mx : vi;
            vmax[i] = vi;
        }
        const T denom = SQRT(vi) * dscale + eps;                /* sqrt(v)*dscale + eps */
        p[i] = pi - step_size * (mi / denom);                   /* p = p - step_size*(m/denom) */
    }
}

#define ADAM_ALIGNED(ptr) (((uintptr_t)(ptr) & 63u) == 0)

static ADAMCORE_ALWAYS_INLINE void
ADAM_CHUNK(T *p, const T *g, T *m, T *v, T *vmax, int64_t n,
           const ADAM_SCALARS *s, const int maximize, const int amsgrad,
           const int wd_mode)
{
    /* Peel until p sits on a 64-byte line (element-aligned p only). */
    int64_t head = 0;
    if (((uintptr_t)p % sizeof(T)) == 0) {
        head = (int64_t)(((64u - ((uintptr_t)p & 63u)) & 63u) / sizeof(T));
        if (head > n) head = n;
    }
    ADAM_LOOP(p, g, m, v, vmax, head, s, maximize, amsgrad, wd_mode);
    p += head; g += head; m += head; v += head; n -= head;
    if (amsgrad) vmax += head;
    if (ADAM_ALIGNED(p) && ADAM_ALIGNED(m) && ADAM_ALIGNED(v) &&
        (!amsgrad || ADAM_ALIGNED(vmax))) {
        ADAM_LOOP((T *)ADAMCORE_ASSUME_ALIGNED(p, 64), g,
                  (T *)ADAMCORE_ASSUME_ALIGNED(m, 64),
                  (T *)ADAMCORE_ASSUME_ALIGNED(v, 64),
                  amsgrad ? (T *)ADAMCORE_ASSUME_ALIGNED(vmax, 64) : vmax,
                  n, s, maximize, amsgrad, wd_mode);
    } else {
        ADAM_LOOP(p, g, m, v, vmax, n, s, maximize, amsgrad, wd_mode);
    }
}

/* Resolve the runtime variant to one of the 12 specialised bodies. */
static ADAMCORE_ALWAYS_INLINE void
ADAM_CAT(adam_dispatch, SUF)(void *p, const void *g, void *m, void *v,
                             void *vmax, int64_t n, const void *scalars,
                             int variant)
{
    const ADAM_SCALARS *s = (const ADAM_SCALARS *)scalars;
#define ADAM_CASE(mx, ams, wd)                                                  \
    case ADAMCORE_VARIANT(mx, ams, wd):                                          \
        ADAM_CHUNK((T *)p, (const T *)g, (T *)m, (T *)v, (T *)vmax, n, s, mx,   \
                   ams, wd);                                                    \
        break;
    switch (variant) {
        ADAM_CASE(0, 0, ADAMCORE_WD_NONE) ADAM_CASE(1, 0, ADAMCORE_WD_NONE)
        ADAM_CASE(0, 1, ADAMCORE_WD_NONE) ADAM_CASE(1, 1, ADAMCORE_WD_NONE)
        ADAM_CASE(0, 0, ADAMCORE_WD_COUPLED) ADAM_CASE(1, 0, ADAMCORE_WD_COUPLED)
        ADAM_CASE(0, 1, ADAMCORE_WD_COUPLED) ADAM_CASE(1, 1, ADAMCORE_WD_COUPLED)
        ADAM_CASE(0, 0, ADAMCORE_WD_DECOUPLED) ADAM_CASE(1, 0, ADAMCORE_WD_DECOUPLED)
        ADAM_CASE(0, 1, ADAMCORE_WD_DECOUPLED) ADAM_CASE(1, 1, ADAMCORE_WD_DECOUPLED)
        default: break;
    }
#undef ADAM_CASE
}

#undef ADAM_ALIGNED
#undef ADAM_LOOP
#undef ADAM_CHUNK
#undef ADAM_SCALARS
