/* Adam with low-precision state (adamcore_adam_hyper.state_format): checks,
 * the per-tensor call keys, and the thread split over blocks of
 * ADAMCORE_QBLOCK elements (lowp_body.h has the loops).
 */
#include <stdint.h>
#include "lowp_internal.h"

/* splitmix64's finalizer (adamcore/qstate.py: call_key). */
static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static adamcore_lowp_fn lowp_for(int level, int is_f64, int format)
{
    const int q8 = format == ADAMCORE_STATE_INT8;
#ifdef ADAMCORE_X86
    if (level == ADAMCORE_SIMD_AVX512)
        return q8 ? (is_f64 ? adamcore_q8_f64_avx512 : adamcore_q8_f32_avx512)
                  : (is_f64 ? adamcore_bf16_f64_avx512 : adamcore_bf16_f32_avx512);
    if (level == ADAMCORE_SIMD_AVX2)
        return q8 ? (is_f64 ? adamcore_q8_f64_avx2 : adamcore_q8_f32_avx2)
                  : (is_f64 ? adamcore_bf16_f64_avx2 : adamcore_bf16_f32_avx2);
#endif
    (void)level;
    return q8 ? (is_f64 ? adamcore_q8_f64_baseline : adamcore_q8_f32_baseline)
              : (is_f64 ? adamcore_bf16_f64_baseline : adamcore_bf16_f32_baseline);
}

typedef struct {
    const adamcore_tensor *tensors;
    int64_t n_tensors;
    adamcore_lowp_fn fn;
    const void *scalars;
    int variant;
    int64_t step;
} lowp_job;

static int64_t n_blocks(int64_t n) { return (n + ADAMCORE_QBLOCK - 1) / ADAMCORE_QBLOCK; }

/* Blocks [lo, hi) of the concatenated blocks of the table, on this thread. */
static void run_blocks(const void *ctx, int64_t lo, int64_t hi)
{
    const lowp_job *j = (const lowp_job *)ctx;
    int64_t off = 0;
    for (int64_t i = 0; i < j->n_tensors && off < hi; i++) {
        const adamcore_tensor *t = &j->tensors[i];
        const int64_t nb = n_blocks(t->n);
        const int64_t a = lo > off ? lo - off : 0;
        const int64_t b = hi < off + nb ? hi - off : nb;
        if (a < b) j->fn(t, a, b, j->scalars, mix64(t->seed ^ mix64((uint64_t)j->step)), j->variant);
        off += nb;
    }
}

int adamcore_adam_lowp_step(const adamcore_tensor *tensors, int64_t n_tensors,
                            const adamcore_adam_hyper *h, int n_threads, int is_f64)
{
    const int q8 = h->state_format == ADAMCORE_STATE_INT8;
    int64_t total = 0, blocks = 0;
    for (int64_t i = 0; i < n_tensors; i++) {
        const adamcore_tensor *t = &tensors[i];
        if (t->n > 0 && q8 && (!t->absmax[0] || !t->absmax[1] || (h->amsgrad && !t->absmax[2])))
            return ADAMCORE_EINVAL;
        total += t->n;
        blocks += n_blocks(t->n);
    }
    if (total == 0) return ADAMCORE_OK;
    adamcore_adam_prepared prep;
    adamcore_adam_prepare(h, is_f64, &prep);
    if (q8) (void)adamcore_qmaps();  /* built before the threads start */
    lowp_job job = {tensors, n_tensors, lowp_for(adamcore_simd_get(), is_f64, h->state_format),
                    prep.scalars, prep.variant, h->step};
    /* As adamcore_split: each thread at least half the serial threshold. */
    const int64_t min_blocks = ADAMCORE_PARALLEL_MIN / 2 / ADAMCORE_QBLOCK > 1
                                   ? ADAMCORE_PARALLEL_MIN / 2 / ADAMCORE_QBLOCK : 1;
    int64_t runs = blocks / min_blocks;
    if (runs > n_threads) runs = n_threads;
    adamcore_split_runs(blocks, total < ADAMCORE_PARALLEL_MIN, (int)runs, 1, run_blocks, &job);
    return ADAMCORE_OK;
}
