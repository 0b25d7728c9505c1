/* Internal to the C core: per-step scalars and the per-SIMD-level chunk kernels. */
#ifndef ADAMCORE_ADAM_INTERNAL_H
#define ADAMCORE_ADAM_INTERNAL_H

#include <stdint.h>
#include "adamcore.h"
#include "compat.h"

/* Per-step scalars, computed once per call in double (adam_step.c) and cast
 * once to the element type before the loop. */
typedef struct {
    float b1, omb1, b2, omb2;  /* beta1, 1-beta1, beta2, 1-beta2 */
    float eps;
    float dscale;              /* 1/sqrt(bc2) (torch) or 1 (keras) */
    float step_size;           /* lr/bc1 (torch) or lr*sqrt(bc2)/bc1 (keras) */
    float wd;                  /* coupled L2 coefficient */
    float decay;               /* 1 - lr*wd, decoupled */
    float gscale;              /* grad_scale */
} adamcore_scalars_f32;

typedef struct {
    double b1, omb1, b2, omb2, eps, dscale, step_size, wd, decay, gscale;
} adamcore_scalars_f64;

/* Which of the 12 loop bodies runs: the options are resolved once per call,
 * never tested inside the loop. */
enum { ADAMCORE_WD_NONE = 0, ADAMCORE_WD_COUPLED = 1, ADAMCORE_WD_DECOUPLED = 2 };
#define ADAMCORE_VARIANT(maximize, amsgrad, wd_mode) \
    ((maximize) | ((amsgrad) << 1) | ((wd_mode) << 2))

/* Steps n elements of one tensor on the calling thread. Pointers are typed by
 * the dtype of the function's name; vmax may be NULL unless the variant has
 * AMSGrad. */
typedef void (*adamcore_chunk_fn)(void *p, const void *g, void *m, void *v,
                                  void *vmax, int64_t n, const void *scalars,
                                  int variant);

#define ADAMCORE_DECLARE_CHUNKS(level)                                        \
    void adamcore_chunk_f32_##level(void *, const void *, void *, void *,     \
                                    void *, int64_t, const void *, int);      \
    void adamcore_chunk_f64_##level(void *, const void *, void *, void *,     \
                                    void *, int64_t, const void *, int);

ADAMCORE_DECLARE_CHUNKS(baseline)
#ifdef ADAMCORE_X86 /* compat.h: the AVX2 and AVX-512 levels are built */
ADAMCORE_DECLARE_CHUNKS(avx2)
ADAMCORE_DECLARE_CHUNKS(avx512)
#endif

/* The row step's loops (adam_simd.c), adamcore_chunk_fn's signature with the
 * variant fixed (the argument is unused): the level's Adam loop of one
 * variant without the alignment peel (NULL for a variant out of range), and
 * SparseAdam's loop (sparse_adam_body.h; vmax unused). */
adamcore_chunk_fn adamcore_row_loop_for(int level, int is_f64, int variant);
adamcore_chunk_fn adamcore_sparse_loop_for(int level, int is_f64, int maximize);

/* The norm's lanes (grad_norm.c, rows.c): a block's elements accumulate in
 * ADAMCORE_NORM_LANES doubles, summed at the end in this fixed pairwise tree,
 * so every vector width performs the same additions. */
#define ADAMCORE_NORM_LANES 16
static ADAMCORE_ALWAYS_INLINE double adamcore_fold_lanes(double *acc)
{
    for (int w = ADAMCORE_NORM_LANES / 2; w >= 1; w /= 2)
        for (int j = 0; j < w; j++) acc[j] += acc[j + w];
    return acc[0];
}

/* [*lo, *hi): run r of n_runs equal runs covering [0, total), with edges on
 * multiples of align; the static split every threaded loop here uses. */
static inline void adamcore_run_bounds(int64_t r, int64_t n_runs, int64_t total,
                                       int64_t align, int64_t *lo, int64_t *hi)
{
    const int64_t per = ((total + n_runs - 1) / n_runs + align - 1) / align * align;
    *lo = r * per < total ? r * per : total;
    *hi = *lo + per < total ? *lo + per : total;
}

/* Run [0, total) as run(ctx, lo, hi) calls: one on the calling thread below
 * ADAMCORE_PARALLEL_MIN, else equal blocks on up to n_threads threads
 * (parallel.c). */
typedef void (*adamcore_range_fn)(const void *ctx, int64_t lo, int64_t hi);
void adamcore_split(int64_t total, int n_threads, adamcore_range_fn run, const void *ctx);
/* Run [0, n_items) (elements, norm blocks) as run(ctx, lo, hi) on up to
 * n_threads equal runs with edges on multiples of align, or as one call on
 * the calling thread, with no OpenMP call, when serial is set (the caller's
 * threshold) or fewer than two runs remain. adamcore_split is this over
 * elements with the step's threshold. */
void adamcore_split_runs(int64_t n_items, int serial, int n_threads, int64_t align,
                         adamcore_range_fn run, const void *ctx);

/* The level's chunk kernel for the dtype (0: float32, 1: float64). */
adamcore_chunk_fn adamcore_chunk_for(int level, int is_f64);

/* One call's Adam constants (adam_step.c), shared by the dense step and the
 * row step (rows.c): the scalars of the dtype (``scalars`` points into this
 * struct), the loop variant and the chunk kernel of the SIMD level in use. */
typedef struct {
    adamcore_scalars_f64 f64;
    adamcore_scalars_f32 f32;
    const void *scalars;
    int variant;
    adamcore_chunk_fn fn;
} adamcore_adam_prepared;

int adamcore_adam_hyper_valid(const adamcore_adam_hyper *h);
/* Fills *out; the struct must not move afterwards (scalars points into it). */
void adamcore_adam_prepare(const adamcore_adam_hyper *h, int is_f64, adamcore_adam_prepared *out);

#endif /* ADAMCORE_ADAM_INTERNAL_H */
