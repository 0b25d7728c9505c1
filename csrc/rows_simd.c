/* The SparseAdam loop compiled once per dtype and SIMD level, as adam_simd.c
 * does for Adam; rows.c picks the level at run time. */
#include <math.h>
#include <stdint.h>
#include "adam_internal.h"

#define T float
#define SUF f32
#define SQRT sqrtf
#include "sparse_adam_body.h"
#undef T
#undef SUF
#undef SQRT

#define T double
#define SUF f64
#define SQRT sqrt
#include "sparse_adam_body.h"
#undef T
#undef SUF
#undef SQRT

#define SPA_DEFINE_LEVEL(level, attr)                                             \
    attr void adamcore_sparse_chunk_f32_##level(void *p, const void *g, void *m,  \
                                                void *v, void *vmax, int64_t n,   \
                                                const void *s, int variant)       \
    {                                                                             \
        sparse_adam_dispatch_f32(p, g, m, v, vmax, n, s, variant);                \
    }                                                                             \
    attr void adamcore_sparse_chunk_f64_##level(void *p, const void *g, void *m,  \
                                                void *v, void *vmax, int64_t n,   \
                                                const void *s, int variant)       \
    {                                                                             \
        sparse_adam_dispatch_f64(p, g, m, v, vmax, n, s, variant);                \
    }

SPA_DEFINE_LEVEL(baseline, )
#ifdef ADAMCORE_X86
SPA_DEFINE_LEVEL(avx2, ADAMCORE_TARGET_AVX2)
SPA_DEFINE_LEVEL(avx512, ADAMCORE_TARGET_AVX512)
#endif
