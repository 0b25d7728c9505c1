/* The Adam loop, and SparseAdam's (sparse_adam_body.h, for row gradients:
 * rows.c), compiled once per dtype and once per SIMD level.
 *
 * Each level is a thin wrapper with a target attribute around the same
 * always_inline body (adam_body.h); the wheel stays baseline x86-64 and
 * adam_step.c picks the best level this CPU runs at run time. */
#include <math.h>
#include <stdint.h>
#include "adam_internal.h"

#define T float
#define SUF f32
#define SQRT sqrtf
#include "adam_body.h"
#include "sparse_adam_body.h"
#undef T
#undef SUF
#undef SQRT

#define T double
#define SUF f64
#define SQRT sqrt
#include "adam_body.h"
#include "sparse_adam_body.h"
#undef T
#undef SUF
#undef SQRT

#define ADAM_DEFINE_LEVEL(level, attr)                                          \
    attr void adamcore_chunk_f32_##level(void *p, const void *g, void *m,      \
                                         void *v, void *vmax, int64_t n,       \
                                         const void *s, int variant)           \
    {                                                                           \
        adam_dispatch_f32(p, g, m, v, vmax, n, s, variant);                     \
    }                                                                           \
    attr void adamcore_chunk_f64_##level(void *p, const void *g, void *m,      \
                                         void *v, void *vmax, int64_t n,       \
                                         const void *s, int variant)           \
    {                                                                           \
        adam_dispatch_f64(p, g, m, v, vmax, n, s, variant);                     \
    }                                                                           \
    attr void adamcore_sparse_chunk_f32_##level(void *p, const void *g, void *m, \
                                                void *v, void *vmax, int64_t n,  \
                                                const void *s, int variant)      \
    {                                                                           \
        sparse_adam_dispatch_f32(p, g, m, v, vmax, n, s, variant);              \
    }                                                                           \
    attr void adamcore_sparse_chunk_f64_##level(void *p, const void *g, void *m, \
                                                void *v, void *vmax, int64_t n,  \
                                                const void *s, int variant)      \
    {                                                                           \
        sparse_adam_dispatch_f64(p, g, m, v, vmax, n, s, variant);              \
    }

ADAM_DEFINE_LEVEL(baseline, )
#ifdef ADAMCORE_X86
ADAM_DEFINE_LEVEL(avx2, ADAMCORE_TARGET_AVX2)
ADAM_DEFINE_LEVEL(avx512, ADAMCORE_TARGET_AVX512)
#endif
