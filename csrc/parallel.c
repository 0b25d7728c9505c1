/* The thread split every threaded loop uses: the optimizer steps (adam_step.c,
 * family_step.c, rows.c, rank_sum.c) over elements, the norms (grad_norm.c,
 * rows.c) over blocks.
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
    adamcore_split_runs(total, total < ADAMCORE_PARALLEL_MIN, (int)n_blocks, 16, run, ctx);
}

void adamcore_split_runs(int64_t n_items, int serial, int n_threads, int64_t align,
                         adamcore_range_fn run, const void *ctx)
{
    int64_t n_runs = serial ? 1 : n_threads;
    if (n_runs > n_items) n_runs = n_items;
    if (n_runs <= 1) {  /* no OpenMP call: serial work, or one item */
        run(ctx, 0, n_items);
        return;
    }
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads((int)n_runs)
#endif
    for (int64_t r = 0; r < n_runs; r++) {
        int64_t lo, hi;
        adamcore_run_bounds(r, n_runs, n_items, align, &lo, &hi);
        run(ctx, lo, hi);
    }
}
