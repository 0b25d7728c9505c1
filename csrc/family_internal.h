/* Internal to the C core: the optimizer family's per-step scalars, option
 * flags and per-SIMD-level chunk kernels (family_step.c, family_simd.c). */
#ifndef ADAMCORE_FAMILY_INTERNAL_H
#define ADAMCORE_FAMILY_INTERNAL_H

#include <stdint.h>
#include "adam_internal.h"

/* Per-step scalars, computed once per call in double (family_step.c, the same
 * expressions as adamcore/reference.py: family_scalars) and cast once to the
 * element type. Each optimizer reads its own. */
#define ADAMCORE_FAMILY_SCALARS(T)                                             \
    struct {                                                                   \
        T gscale;            /* grad_scale, negated to maximize */            \
        T lr;                /* SGD, RMSprop; Adagrad: lr/(1+(step-1)*lr_decay) */ \
        T wd;                /* coupled L2 coefficient */                     \
        T decay;             /* AdaBelief decoupled: 1 - lr*wd */             \
        T mom, omd;          /* momentum, 1 - dampening */                    \
        T alpha, oma;        /* RMSprop: alpha, 1 - alpha */                  \
        T eps;                                                                 \
        T b1, omb1, b2, omb2; /* AdaBelief: betas and 1 - betas */            \
        T dscale, step_size; /* AdaBelief: 1/sqrt(bc2) and lr/bc1, or rectified */ \
    }
typedef ADAMCORE_FAMILY_SCALARS(float) adamcore_family_scalars_f32;
typedef ADAMCORE_FAMILY_SCALARS(double) adamcore_family_scalars_f64;

/* Option flags of one loop body, resolved once per call: every (kind, flags)
 * pair the dispatch lists is its own branch-free loop. */
enum {
    FAM_WD = 1,         /* g = g + wd*p */
    FAM_DECOUPLED = 2,  /* p = p * decay (AdaBelief) */
    FAM_MOMENTUM = 4,   /* SGD, RMSprop */
    FAM_NESTEROV = 8,   /* SGD */
    FAM_FIRST = 16,     /* SGD: buf = g */
    FAM_CENTERED = 32,  /* RMSprop */
    FAM_AMSGRAD = 64,   /* AdaBelief */
    FAM_NO_DENOM = 128  /* AdaBelief rectified, early steps: p = p - step_size*m */
};

/* Steps n elements of one tensor on the calling thread; s0..s2 are the state
 * slots of adamcore_tensor (NULL where unused). */
typedef void (*adamcore_family_fn)(void *p, const void *g, void *s0, void *s1, void *s2,
                                   int64_t n, const void *scalars, int kind, int flags);

#define ADAMCORE_DECLARE_FAMILY(level)                                                \
    void adamcore_family_f32_##level(void *, const void *, void *, void *, void *,   \
                                     int64_t, const void *, int, int);               \
    void adamcore_family_f64_##level(void *, const void *, void *, void *, void *,   \
                                     int64_t, const void *, int, int);

ADAMCORE_DECLARE_FAMILY(baseline)
#ifdef ADAMCORE_X86
ADAMCORE_DECLARE_FAMILY(avx2)
ADAMCORE_DECLARE_FAMILY(avx512)
#endif

#endif /* ADAMCORE_FAMILY_INTERNAL_H */
