/* Sum of squares of many gradients, for global-norm clipping, and whether
 * any element is NaN or infinite.
 *
 * Design:
 * - Bitwise the same for every thread count and SIMD level: each array is cut
 *   into blocks of ADAMCORE_NORM_BLOCK elements; in a block, 16 lanes
 *   accumulate in double (lane j takes elements j, j+16, ...), then the lanes
 *   combine in a fixed pairwise tree. Every vector width performs exactly
 *   these additions. Block sums land in a caller-given workspace and are
 *   added in block order. adamcore/reference.py (grad_sumsq) mirrors it.
 * - One pass, one accumulator: a NaN or inf element makes the sum NaN or inf.
 *   Squares of float32 values cannot overflow a double, so for float32 a
 *   non-finite sum means a non-finite element; for float64 finite values can
 *   overflow, and only then a second pass looks at the elements.
 * - Threads take equal runs of blocks (static schedule); below
 *   ADAMCORE_PARALLEL_MIN elements no OpenMP call is made.
 */
#include <math.h>
#include <stdint.h>
#include "adam_internal.h"

#define LANES ADAMCORE_NORM_LANES

#define DEFINE_BLOCK(T, SUF)                                                        \
    static ADAMCORE_ALWAYS_INLINE double block_##SUF(const T *x, int64_t n)         \
    {                                                                               \
        double acc[LANES] = {0};                                                    \
        int64_t i = 0;                                                              \
        for (; i + LANES <= n; i += LANES)                                          \
            for (int j = 0; j < LANES; j++) {                                       \
                const double v = (double)x[i + j];                                  \
                acc[j] += v * v;                                                    \
            }                                                                       \
        for (int j = 0; i + j < n; j++) {                                           \
            const double v = (double)x[i + j];                                      \
            acc[j] += v * v;                                                        \
        }                                                                           \
        return adamcore_fold_lanes(acc);                                             \
    }
DEFINE_BLOCK(float, f32)
DEFINE_BLOCK(double, f64)

typedef void (*blocks_fn)(const adamcore_array *, int64_t, int64_t, int64_t, double *);

/* Blocks [lo, hi) of the concatenated block index space, sums into out[b - lo]. */
#define DEFINE_BLOCKS(SUF, T, level, attr)                                          \
    attr static void blocks_##SUF##_##level(const adamcore_array *a, int64_t n_arrays, \
                                            int64_t lo, int64_t hi, double *sums)  \
    {                                                                               \
        int64_t first = 0;                                                          \
        for (int64_t k = 0; k < n_arrays && first < hi; k++) {                      \
            const int64_t nb = (a[k].n + ADAMCORE_NORM_BLOCK - 1) / ADAMCORE_NORM_BLOCK; \
            for (int64_t b = first > lo ? first : lo; b < first + nb && b < hi; b++) { \
                const int64_t start = (b - first) * ADAMCORE_NORM_BLOCK;           \
                const int64_t len = a[k].n - start < ADAMCORE_NORM_BLOCK            \
                                        ? a[k].n - start : ADAMCORE_NORM_BLOCK;     \
                sums[b] = block_##SUF((const T *)a[k].data + start, len);           \
            }                                                                       \
            first += nb;                                                            \
        }                                                                           \
    }

#define DEFINE_LEVEL(level, attr)                 \
    DEFINE_BLOCKS(f32, float, level, attr)        \
    DEFINE_BLOCKS(f64, double, level, attr)
DEFINE_LEVEL(baseline, )
#ifdef ADAMCORE_X86
DEFINE_LEVEL(avx2, ADAMCORE_TARGET_AVX2)
DEFINE_LEVEL(avx512, ADAMCORE_TARGET_AVX512)
#endif

typedef struct {
    blocks_fn fn;
    const adamcore_array *arrays;
    int64_t n_arrays;
    double *sums;
} blocks_ctx;

static void run_blocks(const void *vctx, int64_t lo, int64_t hi)
{
    const blocks_ctx *c = (const blocks_ctx *)vctx;
    c->fn(c->arrays, c->n_arrays, lo, hi, c->sums);
}

int64_t adamcore_norm_blocks(const adamcore_array *arrays, int64_t n_arrays)
{
    int64_t blocks = 0;
    for (int64_t k = 0; k < n_arrays; k++)
        blocks += (arrays[k].n + ADAMCORE_NORM_BLOCK - 1) / ADAMCORE_NORM_BLOCK;
    return blocks;
}

static int sumsq(const adamcore_array *arrays, int64_t n_arrays, double *work,
                 int n_threads, double *out_sumsq, int *out_nonfinite, int is_f64)
{
    if (n_arrays < 0 || (n_arrays > 0 && !arrays) || n_threads < 1 || !out_sumsq ||
        !out_nonfinite)
        return ADAMCORE_EINVAL;
    int64_t total = 0;
    for (int64_t k = 0; k < n_arrays; k++) {
        if (arrays[k].n < 0 || (arrays[k].n > 0 && !arrays[k].data)) return ADAMCORE_EINVAL;
        total += arrays[k].n;
    }
    const int64_t n_blocks = adamcore_norm_blocks(arrays, n_arrays);
    if (n_blocks > 0 && !work) return ADAMCORE_EINVAL;
    blocks_fn fn = is_f64 ? blocks_f64_baseline : blocks_f32_baseline;
#ifdef ADAMCORE_X86
    const int level = adamcore_simd_get();
    if (level == ADAMCORE_SIMD_AVX512) fn = is_f64 ? blocks_f64_avx512 : blocks_f32_avx512;
    if (level == ADAMCORE_SIMD_AVX2) fn = is_f64 ? blocks_f64_avx2 : blocks_f32_avx2;
#endif
    const blocks_ctx ctx = {fn, arrays, n_arrays, work};
    adamcore_split_runs(n_blocks, total < ADAMCORE_PARALLEL_MIN, n_threads, 1, run_blocks, &ctx);
    double *sums = work;
    double s = 0.0;
    for (int64_t b = 0; b < n_blocks; b++) s += sums[b];  /* block order, for any split */
    int nonfinite = !isfinite(s);
    if (nonfinite && is_f64) {  /* a finite float64 may have overflowed: look */
        nonfinite = 0;
        for (int64_t k = 0; k < n_arrays && !nonfinite; k++)
            for (int64_t i = 0; i < arrays[k].n; i++)
                if (!isfinite(((const double *)arrays[k].data)[i])) {
                    nonfinite = 1;
                    break;
                }
    }
    *out_sumsq = s;
    *out_nonfinite = nonfinite;
    return ADAMCORE_OK;
}

int adamcore_sumsq_f32(const adamcore_array *arrays, int64_t n_arrays, double *work,
                       int n_threads, double *out_sumsq, int *out_nonfinite)
{
    return sumsq(arrays, n_arrays, work, n_threads, out_sumsq, out_nonfinite, 0);
}

int adamcore_sumsq_f64(const adamcore_array *arrays, int64_t n_arrays, double *work,
                       int n_threads, double *out_sumsq, int *out_nonfinite)
{
    return sumsq(arrays, n_arrays, work, n_threads, out_sumsq, out_nonfinite, 1);
}
