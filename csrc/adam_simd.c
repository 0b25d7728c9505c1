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
    }

ADAM_DEFINE_LEVEL(baseline, )
#ifdef ADAMCORE_X86
ADAM_DEFINE_LEVEL(avx2, ADAMCORE_TARGET_AVX2)
ADAM_DEFINE_LEVEL(avx512, ADAMCORE_TARGET_AVX512)
#endif

/* The row step's loops (rows.c), Adam's and SparseAdam's: one function per
 * variant, resolved once per call, with no alignment peel or variant switch
 * per row. A named row is a few hundred bytes, so these per-call
 * instructions are a large part of a row's and limit how many rows' cache misses the core overlaps: on a 1M x 64
 * float32 table, 4096 scattered rows took ~1.07 ms through the chunk kernel
 * and ~0.75 ms through the variant's loop (kernel only, 1 thread: the
 * measurement of tools/ab_rows.py). */
#define ROW_LOOP(SUF, T, level, attr, mx, ams, wd)                                   \
    attr static void row_loop_##SUF##_##level##_##mx##ams##wd(                       \
        void *p, const void *g, void *m, void *v, void *vmax, int64_t n,             \
        const void *s, int variant)                                                 \
    {                                                                                \
        (void)variant;                                                               \
        adam_loop_##SUF((T *)p, (const T *)g, (T *)m, (T *)v, (T *)vmax, n,          \
                        (const adamcore_scalars_##SUF *)s, mx, ams, wd);             \
    }
#define ROW_LOOPS(SUF, T, level, attr)                                               \
    ROW_LOOP(SUF, T, level, attr, 0, 0, 0) ROW_LOOP(SUF, T, level, attr, 1, 0, 0)    \
    ROW_LOOP(SUF, T, level, attr, 0, 1, 0) ROW_LOOP(SUF, T, level, attr, 1, 1, 0)    \
    ROW_LOOP(SUF, T, level, attr, 0, 0, 1) ROW_LOOP(SUF, T, level, attr, 1, 0, 1)    \
    ROW_LOOP(SUF, T, level, attr, 0, 1, 1) ROW_LOOP(SUF, T, level, attr, 1, 1, 1)    \
    ROW_LOOP(SUF, T, level, attr, 0, 0, 2) ROW_LOOP(SUF, T, level, attr, 1, 0, 2)    \
    ROW_LOOP(SUF, T, level, attr, 0, 1, 2) ROW_LOOP(SUF, T, level, attr, 1, 1, 2)    \
    static const adamcore_chunk_fn row_loops_##SUF##_##level[12] = {                 \
        ROW_ENTRY(SUF, level, 0, 0, 0), ROW_ENTRY(SUF, level, 1, 0, 0),              \
        ROW_ENTRY(SUF, level, 0, 1, 0), ROW_ENTRY(SUF, level, 1, 1, 0),              \
        ROW_ENTRY(SUF, level, 0, 0, 1), ROW_ENTRY(SUF, level, 1, 0, 1),              \
        ROW_ENTRY(SUF, level, 0, 1, 1), ROW_ENTRY(SUF, level, 1, 1, 1),              \
        ROW_ENTRY(SUF, level, 0, 0, 2), ROW_ENTRY(SUF, level, 1, 0, 2),              \
        ROW_ENTRY(SUF, level, 0, 1, 2), ROW_ENTRY(SUF, level, 1, 1, 2)};
#define SPARSE_LOOP(SUF, T, level, attr, mx)                                         \
    attr static void sparse_loop_##SUF##_##level##_##mx(                             \
        void *p, const void *g, void *m, void *v, void *vmax, int64_t n,             \
        const void *s, int variant)                                                 \
    {                                                                                \
        (void)vmax;                                                                  \
        (void)variant;                                                               \
        sparse_adam_loop_##SUF((T *)p, (const T *)g, (T *)m, (T *)v, n,              \
                               (const adamcore_scalars_##SUF *)s, mx);               \
    }
#define ROW_LEVEL(SUF, T, level, attr)                                               \
    ROW_LOOPS(SUF, T, level, attr)                                                   \
    SPARSE_LOOP(SUF, T, level, attr, 0) SPARSE_LOOP(SUF, T, level, attr, 1)          \
    static const adamcore_chunk_fn sparse_loops_##SUF##_##level[2] = {               \
        sparse_loop_##SUF##_##level##_0, sparse_loop_##SUF##_##level##_1};
/* Each loop at its variant's index (wd_mode 0, 1, 2: ADAMCORE_WD_NONE, _COUPLED, _DECOUPLED). */
#define ROW_ENTRY(SUF, level, mx, ams, wd) \
    [ADAMCORE_VARIANT(mx, ams, wd)] = row_loop_##SUF##_##level##_##mx##ams##wd

ROW_LEVEL(f32, float, baseline, )
ROW_LEVEL(f64, double, baseline, )
#ifdef ADAMCORE_X86
ROW_LEVEL(f32, float, avx2, ADAMCORE_TARGET_AVX2)
ROW_LEVEL(f64, double, avx2, ADAMCORE_TARGET_AVX2)
ROW_LEVEL(f32, float, avx512, ADAMCORE_TARGET_AVX512)
ROW_LEVEL(f64, double, avx512, ADAMCORE_TARGET_AVX512)
#endif

adamcore_chunk_fn adamcore_row_loop_for(int level, int is_f64, int variant)
{
    if (variant < 0 || variant >= 12) return 0;
#ifdef ADAMCORE_X86
    if (level == ADAMCORE_SIMD_AVX512)
        return is_f64 ? row_loops_f64_avx512[variant] : row_loops_f32_avx512[variant];
    if (level == ADAMCORE_SIMD_AVX2)
        return is_f64 ? row_loops_f64_avx2[variant] : row_loops_f32_avx2[variant];
#endif
    (void)level;
    return is_f64 ? row_loops_f64_baseline[variant] : row_loops_f32_baseline[variant];
}

adamcore_chunk_fn adamcore_sparse_loop_for(int level, int is_f64, int maximize)
{
    const int k = maximize != 0;
#ifdef ADAMCORE_X86
    if (level == ADAMCORE_SIMD_AVX512)
        return is_f64 ? sparse_loops_f64_avx512[k] : sparse_loops_f32_avx512[k];
    if (level == ADAMCORE_SIMD_AVX2)
        return is_f64 ? sparse_loops_f64_avx2[k] : sparse_loops_f32_avx2[k];
#endif
    (void)level;
    return is_f64 ? sparse_loops_f64_baseline[k] : sparse_loops_f32_baseline[k];
}
