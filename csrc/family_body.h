/* The dtype-generic loops of the optimizer family, included once per dtype by
 * family_simd.c with T (float or double), SUF (f32 or f64) and SQRT.
 *
 * Design: as adam_body.h. One pass over memory, no temporaries; kind and
 * flags are compile-time constants of an always_inline body, so each listed
 * (kind, flags) pair is its own branch-free loop; every operation is one
 * IEEE-rounded +, -, *, / or sqrt in a fixed order (-ffp-contract=off), which
 * adamcore/reference.py repeats with one NumPy ufunc each; a peel aligns p,
 * and with it every state stream (allocated at p's offset mod 64).
 *
 * Per element, with g = grad * gscale (gscale negated to maximize) and, under
 * FAM_WD, g = g + wd*p first (PyTorch's L2 form):
 *   SGD        buf = g (FAM_FIRST) or mom*buf + (1-dampening)*g;
 *              g = g + mom*buf (Nesterov) or buf;  p = p - lr*g
 *   RMSprop    sq = alpha*sq + (1-alpha)*(g*g);
 *              centered: ga = ga + (1-alpha)*(g - ga); avg = sqrt(sq - ga*ga) + eps
 *              else avg = sqrt(sq) + eps;
 *              momentum: buf = mom*buf + g/avg; p = p - lr*buf
 *              else p = p - lr*(g/avg)
 *   Adagrad    sum = sum + g*g;  p = p - clr*(g/(sqrt(sum) + eps))
 *   AdaBelief  p = p*(1 - lr*wd) if decoupled;  m = b1*m + (1-b1)*g;
 *              r = g - m;  s = (b2*s + (1-b2)*(r*r)) + eps;
 *              amsgrad: s = smax = maximum(smax, s);
 *              p = p - step_size*(m/(sqrt(s)*dscale + eps)), or, rectified while
 *              the variance is not yet tractable (FAM_NO_DENOM), p = p - step_size*m
 */
#define FAM_CAT_(a, b) a##_##b
#define FAM_CAT(a, b) FAM_CAT_(a, b)
#define FAM_LOOP FAM_CAT(family_loop, SUF)
#define FAM_CHUNK FAM_CAT(family_chunk, SUF)
#define FAM_SCALARS FAM_CAT(adamcore_family_scalars, SUF)

static ADAMCORE_ALWAYS_INLINE void
FAM_LOOP(T *restrict p, const T *restrict g, T *restrict s0, T *restrict s1, T *restrict s2,
         int64_t n, const FAM_SCALARS *s, const int kind, const int flags)
{
    const T gscale = s->gscale, lr = s->lr, wd = s->wd, decay = s->decay;
    const T mom = s->mom, omd = s->omd, alpha = s->alpha, oma = s->oma, eps = s->eps;
    const T b1 = s->b1, omb1 = s->omb1, b2 = s->b2, omb2 = s->omb2;
    const T dscale = s->dscale, step_size = s->step_size;
    for (int64_t i = 0; i < n; i++) {
        T gi = g[i] * gscale;                                     /* g = g * gscale */
        T pi = p[i];
        if (flags & FAM_WD) gi = gi + wd * pi;                    /* g = g + wd*p */
        if (kind == ADAMCORE_SGD) {
            if (flags & FAM_MOMENTUM) {
                const T b = (flags & FAM_FIRST) ? gi : mom * s0[i] + omd * gi;
                s0[i] = b;                                        /* buf */
                gi = (flags & FAM_NESTEROV) ? gi + mom * b : b;
            }
            p[i] = pi - lr * gi;                                  /* p = p - lr*g */
        } else if (kind == ADAMCORE_RMSPROP) {
            const T sq = alpha * s0[i] + oma * (gi * gi);         /* sq = alpha*sq + (1-alpha)*g*g */
            s0[i] = sq;
            T avg;
            if (flags & FAM_CENTERED) {
                const T ga = s2[i] + oma * (gi - s2[i]);          /* ga = ga + (1-alpha)*(g-ga) */
                s2[i] = ga;
                avg = SQRT(sq - ga * ga) + eps;                   /* sqrt(sq - ga*ga) + eps */
            } else {
                avg = SQRT(sq) + eps;                             /* sqrt(sq) + eps */
            }
            if (flags & FAM_MOMENTUM) {
                const T b = mom * s1[i] + gi / avg;               /* buf = mom*buf + g/avg */
                s1[i] = b;
                p[i] = pi - lr * b;                               /* p = p - lr*buf */
            } else {
                p[i] = pi - lr * (gi / avg);                      /* p = p - lr*(g/avg) */
            }
        } else if (kind == ADAMCORE_ADAGRAD) {
            const T sum = s0[i] + gi * gi;                        /* sum = sum + g*g */
            s0[i] = sum;
            p[i] = pi - lr * (gi / (SQRT(sum) + eps));            /* p = p - clr*(g/(sqrt(sum)+eps)) */
        } else { /* ADAMCORE_ADABELIEF */
            if (flags & FAM_DECOUPLED) pi = pi * decay;           /* p = p * (1 - lr*wd) */
            const T m = b1 * s0[i] + omb1 * gi;                   /* m = b1*m + (1-b1)*g */
            const T r = gi - m;                                   /* r = g - m */
            T v = b2 * s1[i] + omb2 * (r * r) + eps;              /* s = (b2*s + (1-b2)*r*r) + eps */
            s0[i] = m;
            s1[i] = v;
            if (flags & FAM_AMSGRAD) {                            /* smax = np.maximum(smax, s) */
                const T mx = s2[i];
                v = (mx > v || mx != mx) ? mx : v;
                s2[i] = v;
            }
            if (flags & FAM_NO_DENOM)
                p[i] = pi - step_size * m;                        /* p = p - step_size*m */
            else                                                  /* p = p - step_size*(m/denom) */
                p[i] = pi - step_size * (m / (SQRT(v) * dscale + eps));
        }
    }
}

#define FAM_ALIGNED(ptr) (((uintptr_t)(ptr) & 63u) == 0)
#define FAM_AT(ptr) ((ptr) ? (ptr) + head : (ptr))

static ADAMCORE_ALWAYS_INLINE void
FAM_CHUNK(T *p, const T *g, T *s0, T *s1, T *s2, int64_t n, const FAM_SCALARS *s,
          const int kind, const int flags)
{
    /* Peel until p sits on a 64-byte line (element-aligned p only). */
    int64_t head = 0;
    if (((uintptr_t)p % sizeof(T)) == 0) {
        head = (int64_t)(((64u - ((uintptr_t)p & 63u)) & 63u) / sizeof(T));
        if (head > n) head = n;
    }
    FAM_LOOP(p, g, s0, s1, s2, head, s, kind, flags);
    p += head; g += head; n -= head;
    s0 = FAM_AT(s0); s1 = FAM_AT(s1); s2 = FAM_AT(s2);
    if (FAM_ALIGNED(p) && (!s0 || FAM_ALIGNED(s0)) && (!s1 || FAM_ALIGNED(s1)) &&
        (!s2 || FAM_ALIGNED(s2))) {
        FAM_LOOP((T *)ADAMCORE_ASSUME_ALIGNED(p, 64), g, s0, s1, s2, n, s, kind, flags);
    } else {
        FAM_LOOP(p, g, s0, s1, s2, n, s, kind, flags);
    }
}

/* Resolve the runtime (kind, flags) to one of the specialised bodies. */
static ADAMCORE_ALWAYS_INLINE void
FAM_CAT(family_dispatch, SUF)(void *p, const void *g, void *s0, void *s1, void *s2, int64_t n,
                              const void *scalars, int kind, int flags)
{
    const FAM_SCALARS *s = (const FAM_SCALARS *)scalars;
#define FAM_CASE(k, f)                                                                \
    case (k) * 256 + (f):                                                             \
        FAM_CHUNK((T *)p, (const T *)g, (T *)s0, (T *)s1, (T *)s2, n, s, k, f);       \
        break;
#define FAM_WD_CASES(k, f) FAM_CASE(k, f) FAM_CASE(k, (f) | FAM_WD)
    switch (kind * 256 + flags) {
        FAM_WD_CASES(ADAMCORE_SGD, 0)
        FAM_WD_CASES(ADAMCORE_SGD, FAM_MOMENTUM)
        FAM_WD_CASES(ADAMCORE_SGD, FAM_MOMENTUM | FAM_FIRST)
        FAM_WD_CASES(ADAMCORE_SGD, FAM_MOMENTUM | FAM_NESTEROV)
        FAM_WD_CASES(ADAMCORE_SGD, FAM_MOMENTUM | FAM_NESTEROV | FAM_FIRST)
        FAM_WD_CASES(ADAMCORE_RMSPROP, 0)
        FAM_WD_CASES(ADAMCORE_RMSPROP, FAM_MOMENTUM)
        FAM_WD_CASES(ADAMCORE_RMSPROP, FAM_CENTERED)
        FAM_WD_CASES(ADAMCORE_RMSPROP, FAM_MOMENTUM | FAM_CENTERED)
        FAM_WD_CASES(ADAMCORE_ADAGRAD, 0)
        FAM_WD_CASES(ADAMCORE_ADABELIEF, 0)
        FAM_WD_CASES(ADAMCORE_ADABELIEF, FAM_AMSGRAD)
        FAM_CASE(ADAMCORE_ADABELIEF, FAM_DECOUPLED)
        FAM_CASE(ADAMCORE_ADABELIEF, FAM_DECOUPLED | FAM_AMSGRAD)
        FAM_WD_CASES(ADAMCORE_ADABELIEF, FAM_NO_DENOM)
        FAM_WD_CASES(ADAMCORE_ADABELIEF, FAM_NO_DENOM | FAM_AMSGRAD)
        FAM_CASE(ADAMCORE_ADABELIEF, FAM_NO_DENOM | FAM_DECOUPLED)
        FAM_CASE(ADAMCORE_ADABELIEF, FAM_NO_DENOM | FAM_DECOUPLED | FAM_AMSGRAD)
        default: break;
    }
#undef FAM_WD_CASES
#undef FAM_CASE
}

#undef FAM_AT
#undef FAM_ALIGNED
#undef FAM_LOOP
#undef FAM_CHUNK
#undef FAM_SCALARS
