/* The optimizer family's loops compiled once per dtype and SIMD level, as
 * adam_simd.c does for Adam; family_step.c picks the level at run time. */
#include <math.h>
#include <stdint.h>
#include "family_internal.h"

#define T float
#define SUF f32
#define SQRT sqrtf
#include "family_body.h"
#undef T
#undef SUF
#undef SQRT

#define T double
#define SUF f64
#define SQRT sqrt
#include "family_body.h"
#undef T
#undef SUF
#undef SQRT

#define FAM_DEFINE_LEVEL(level, attr)                                                  \
    attr void adamcore_family_f32_##level(void *p, const void *g, void *s0, void *s1,  \
                                          void *s2, int64_t n, const void *s, int kind, \
                                          int flags)                                   \
    {                                                                                  \
        family_dispatch_f32(p, g, s0, s1, s2, n, s, kind, flags);                      \
    }                                                                                  \
    attr void adamcore_family_f64_##level(void *p, const void *g, void *s0, void *s1,  \
                                          void *s2, int64_t n, const void *s, int kind, \
                                          int flags)                                   \
    {                                                                                  \
        family_dispatch_f64(p, g, s0, s1, s2, n, s, kind, flags);                      \
    }

FAM_DEFINE_LEVEL(baseline, )
#ifdef ADAMCORE_X86
FAM_DEFINE_LEVEL(avx2, ADAMCORE_TARGET_AVX2)
FAM_DEFINE_LEVEL(avx512, ADAMCORE_TARGET_AVX512)
#endif
