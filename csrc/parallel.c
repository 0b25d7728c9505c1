/* The thread split every optimizer step uses (adam_step.c, family_step.c).
 *
 * Design:
 * - Threads get equal contiguous blocks of the concatenated index space
 *   (edges on multiples of 16 elements, a 64-byte line of float32) through a
 *   static-schedule parallel for; a block may span several tensors, so 1000
 *   small tensors cost one call and one parallel region.
 * - Below ADAMCORE_PARALLEL_MIN elements the call never touches OpenMP: even
 *   a region that decides to run serially costs ~0.3 us here. `make threshold`
 *   (csrc/bench_threshold.c) measured, float32, 2 cores, warm pool, median ns
 *   per call 1 thread / 2 threads: 2^11 1248/2752, 2^12 2959/2297,
 *   2^14 12157/7802, 2^16 47523/29789. Two threads win from 2^12 with the pool
 *   spinning; 2^14 leaves room for waking a sleeping pool.
 * - Elementwise arithmetic makes the result independent of the split.
 */
#include <stdint.h>
#include "adam_internal.h"
#include "omp_compat.h"

void adamcore_split(int64_t total, int n_threads, adamcore_range_fn run, const void *ctx)
{
    /* Every thread gets at least half the threshold, or it costs more than it saves. */
    const int64_t min_block = ADAMCORE_PARALLEL_MIN / 2 > 16 ? ADAMCORE_PARALLEL_MIN / 2 : 16;
    int64_t n_blocks = total / min_block;
    if (n_blocks > n_threads) n_blocks = n_threads;
    if (total < ADAMCORE_PARALLEL_MIN || n_blocks < 2) {
        run(ctx, 0, total);
        return;
    }
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads((int)n_blocks)
#endif
    for (int64_t b = 0; b < n_blocks; b++) {
        int64_t lo, hi;
        adamcore_run_bounds(b, n_blocks, total, 16, &lo, &hi);
        run(ctx, lo, hi);
    }
}
