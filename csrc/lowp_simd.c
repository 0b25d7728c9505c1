/* The low-precision Adam loops (lowp_body.h), compiled once per dtype and
 * once per SIMD level, as adam_simd.c does for float state. */
#include <math.h>
#include <stdint.h>
#include "lowp_internal.h"

#define T float
#define SUF f32
#define SQRT sqrtf
#include "lowp_body.h"
#undef T
#undef SUF
#undef SQRT

#define T double
#define SUF f64
#define SQRT sqrt
#include "lowp_body.h"
#undef T
#undef SUF
#undef SQRT

#define LOWP_DEFINE(name, SUF, level, attr)                                               \
    attr void adamcore_##name##_##SUF##_##level(const adamcore_tensor *t, int64_t b0,     \
                                                int64_t b1, const void *s, uint64_t key,  \
                                                int variant)                              \
    {                                                                                      \
        name##_dispatch_##SUF(t, b0, b1, s, key, variant);                                  \
    }
#define LOWP_LEVEL(level, attr)                                                            \
    LOWP_DEFINE(bf16, f32, level, attr) LOWP_DEFINE(bf16, f64, level, attr)                \
    LOWP_DEFINE(q8, f32, level, attr) LOWP_DEFINE(q8, f64, level, attr)

LOWP_LEVEL(baseline, )
#ifdef ADAMCORE_X86
LOWP_LEVEL(avx2, ADAMCORE_TARGET_AVX2)
LOWP_LEVEL(avx512, ADAMCORE_TARGET_AVX512)
#endif
