/* The memory roofline for an Adam step, measured on this machine.
 *
 * Design: the same access pattern as the Adam kernel (four float32 streams
 * read, three written back in place), with one add per stream instead of
 * Adam's arithmetic, split over threads into the same static blocks and
 * compiled for the same SIMD levels. Over arrays far larger than the last
 * cache level, its time per element is the least any Adam step can take. */
#include <stdint.h>
#include "adam_internal.h"
#include "omp_compat.h"

static ADAMCORE_ALWAYS_INLINE void
probe_loop(float *restrict p, const float *restrict g, float *restrict m,
           float *restrict v, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        const float gi = g[i];
        p[i] = p[i] + gi;
        m[i] = m[i] + gi;
        v[i] = v[i] + gi;
    }
}

typedef void (*probe_fn)(float *, const float *, float *, float *, int64_t);

/* Peel to a 64-byte line of p, as the Adam kernel does, so that both see the
 * same aligned streams (arrays at one offset mod 64, like a param's state). */
static ADAMCORE_ALWAYS_INLINE void
probe_chunk(float *p, const float *g, float *m, float *v, int64_t n)
{
    int64_t head = (int64_t)(((64u - ((uintptr_t)p & 63u)) & 63u) / sizeof(float));
    if (head > n) head = n;
    probe_loop(p, g, m, v, head);
    probe_loop(p + head, g + head, m + head, v + head, n - head);
}

#define PROBE_LEVEL(level, attr)                                                   \
    attr static void probe_##level(float *p, const float *g, float *m, float *v,  \
                                   int64_t n)                                      \
    {                                                                              \
        probe_chunk(p, g, m, v, n);                                                \
    }

PROBE_LEVEL(baseline, )
#ifdef ADAMCORE_X86
PROBE_LEVEL(avx2, ADAMCORE_TARGET_AVX2)
PROBE_LEVEL(avx512, ADAMCORE_TARGET_AVX512)
#endif

int adamcore_stream_probe_f32(float *p, const float *g, float *m, float *v, int64_t n,
                              int n_threads)
{
    if (n < 0 || n_threads < 1 || (n > 0 && (!p || !g || !m || !v))) return ADAMCORE_EINVAL;
    probe_fn fn = probe_baseline;
#ifdef ADAMCORE_X86
    const int level = adamcore_simd_get();
    if (level == ADAMCORE_SIMD_AVX512) fn = probe_avx512;
    if (level == ADAMCORE_SIMD_AVX2) fn = probe_avx2;
#endif
    if (n_threads == 1) {
        fn(p, g, m, v, n);
        return ADAMCORE_OK;
    }
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(n_threads)
#endif
    for (int64_t b = 0; b < n_threads; b++) {
        int64_t lo, hi;
        adamcore_run_bounds(b, n_threads, n, 16, &lo, &hi);
        fn(p + lo, g + lo, m + lo, v + lo, hi - lo);
    }
    return ADAMCORE_OK;
}
