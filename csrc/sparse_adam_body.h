/* torch.optim.SparseAdam's update of one row's elements, included once per
 * dtype by adam_simd.c with T, SUF and SQRT as for adam_body.h.
 *
 * Design: torch writes each moment as old + (1-b)*(new - old) and takes
 * epsilon outside the bias correction (the scalars' "keras" form:
 * step_size = lr*sqrt(bc2)/bc1, dscale = 1); these are its operations in its
 * order, so the kernel differs from torch only in how duplicates are summed.
 * Same rules as adam_body.h: single IEEE operations, -ffp-contract=off, the
 * maximize option a compile-time constant of its own loop.
 */
#define SPA_CAT_(a, b) a##_##b
#define SPA_CAT(a, b) SPA_CAT_(a, b)
#define SPA_LOOP SPA_CAT(sparse_adam_loop, SUF)
#define SPA_SCALARS SPA_CAT(adamcore_scalars, SUF)

static ADAMCORE_ALWAYS_INLINE void
SPA_LOOP(T *restrict p, const T *restrict g, T *restrict m, T *restrict v, int64_t n,
         const SPA_SCALARS *s, const int maximize)
{
    const T omb1 = s->omb1, omb2 = s->omb2, eps = s->eps;
    const T step_size = s->step_size, gscale = s->gscale;
    for (int64_t i = 0; i < n; i++) {
        T gi = g[i] * gscale;                      /* g = g * grad_scale */
        const T pi = p[i], m0 = m[i], v0 = v[i];   /* p loaded first, as in adam_body.h: */
        if (maximize) gi = -gi;                    /* g = -g      (measured faster cold) */
        const T mi = m0 + (gi - m0) * omb1;        /* m = m + (g - m)*(1-b1) */
        const T vi = v0 + (gi * gi - v0) * omb2;   /* v = v + (g*g - v)*(1-b2) */
        m[i] = mi;
        v[i] = vi;
        p[i] = pi - step_size * (mi / (SQRT(vi) + eps)); /* p = p - step_size*(m/(sqrt(v)+eps)) */
    }
}

#undef SPA_LOOP
#undef SPA_SCALARS
