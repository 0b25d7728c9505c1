/* The reduce half of adamcore.distributed's reproducible reduce-scatter: the
 * P slices an Alltoall brought in, one per rank, summed in rank order.
 *
 * Design:
 * - out[i] = (((r_0[i] + r_1[i]) + r_2[i]) + ... + r_{P-1}[i]) * scale, in
 *   the grads' dtype: the order of the additions is fixed by rank, never by
 *   the network's reduction tree, so every process count, thread count and
 *   SIMD level gives the bits of one process adding the P gradient sets
 *   left to right. scale (1/P for a mean) multiplies once, after the sum;
 *   scale == 1 skips the multiply, which would change nothing.
 * - Element-wise, so the compiler's vectorisation and the thread split
 *   (adamcore_split: static schedule, serial below ADAMCORE_PARALLEL_MIN)
 *   change no bits (-ffp-contract=off keeps the multiply unfused).
 * - One pass: P reads and one write per element, no temporaries.
 * adamcore/reference.py (rank_sum) mirrors it.
 */
#include <stdint.h>
#include "adam_internal.h"

typedef struct {
    const void *recv;
    void *out;
    int64_t n_ranks, stride;
    double scale;
} rank_sum_ctx;

#define DEFINE_RANK_SUM(T, SUF)                                                     \
    static void rank_sum_run_##SUF(const void *vctx, int64_t lo, int64_t hi)        \
    {                                                                               \
        const rank_sum_ctx *c = (const rank_sum_ctx *)vctx;                         \
        const T *recv = (const T *)c->recv;                                \
        T *out = (T *)c->out;                                              \
        const T scale = (T)c->scale;                                                \
        for (int64_t i = lo; i < hi; i++) out[i] = recv[i];                         \
        for (int64_t r = 1; r < c->n_ranks; r++) {                                  \
            const T *row = recv + r * c->stride;                           \
            for (int64_t i = lo; i < hi; i++) out[i] += row[i];                     \
        }                                                                           \
        if (scale != (T)1)                                                          \
            for (int64_t i = lo; i < hi; i++) out[i] *= scale;                      \
    }                                                                               \
    int adamcore_rank_sum_##SUF(const T *recv, int64_t n_ranks, int64_t stride,     \
                                int64_t n, T scale, T *out, int n_threads)          \
    {                                                                               \
        if (n < 0 || n_ranks < 1 || stride < n || n_threads < 1 ||                  \
            (n > 0 && (!recv || !out)))                                             \
            return ADAMCORE_EINVAL;                                                 \
        const rank_sum_ctx ctx = {recv, out, n_ranks, stride, (double)scale};       \
        adamcore_split(n, n_threads, rank_sum_run_##SUF, &ctx);                     \
        return ADAMCORE_OK;                                                         \
    }
DEFINE_RANK_SUM(float, f32)
DEFINE_RANK_SUM(double, f64)
