/* The Adam entry points: validate, compute the per-step scalars once, choose
 * the SIMD kernel, and split the concatenated elements of all tensors over
 * threads (parallel.c).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "adam_internal.h"
#include "lowp_internal.h"
#include "omp_compat.h"

/* ---- SIMD level ------------------------------------------------------- */

static const char *const level_names[ADAMCORE_SIMD_COUNT] = {"baseline", "avx2", "avx512"};

const char *adamcore_simd_name(int level)
{
    return (level >= 0 && level < ADAMCORE_SIMD_COUNT) ? level_names[level] : "unknown";
}

int adamcore_simd_supported(void)
{
    ADAMCORE_CPU_INIT();  /* compat.h: baseline only where the levels are not built */
    if (ADAMCORE_CPU_HAS_AVX512()) return ADAMCORE_SIMD_AVX512;
    if (ADAMCORE_CPU_HAS_AVX2()) return ADAMCORE_SIMD_AVX2;
    return ADAMCORE_SIMD_BASELINE;
}

/* -1 until first use; then the level in use. Relaxed atomic int loads and
 * stores (compat.h): a concurrent set and step see one or the other level,
 * and both give the same bits. */
static int simd_level = -1;

static int simd_initial(void)
{
    int level = adamcore_simd_supported();
    const char *env = getenv("ADAMCORE_SIMD");
    if (env != NULL) {
        for (int l = 0; l < ADAMCORE_SIMD_COUNT; l++)
            if (strcmp(env, level_names[l]) == 0 && l < level) level = l;
    }
    return level;
}

int adamcore_simd_get(void)
{
    int level = ADAMCORE_LOAD_INT_RELAXED(&simd_level);
    if (level < 0) {
        level = simd_initial();
        ADAMCORE_STORE_INT_RELAXED(&simd_level, level);
    }
    return level;
}

int adamcore_simd_set(int level)
{
    if (level < 0 || level > adamcore_simd_supported()) return ADAMCORE_EUNSUPPORTED;
    ADAMCORE_STORE_INT_RELAXED(&simd_level, level);
    return ADAMCORE_OK;
}

adamcore_chunk_fn adamcore_chunk_for(int level, int is_f64)
{
#ifdef ADAMCORE_X86
    if (level == ADAMCORE_SIMD_AVX512)
        return is_f64 ? adamcore_chunk_f64_avx512 : adamcore_chunk_f32_avx512;
    if (level == ADAMCORE_SIMD_AVX2)
        return is_f64 ? adamcore_chunk_f64_avx2 : adamcore_chunk_f32_avx2;
#endif
    (void)level;
    return is_f64 ? adamcore_chunk_f64_baseline : adamcore_chunk_f32_baseline;
}

/* ---- OpenMP ------------------------------------------------------------ */

int adamcore_openmp_enabled(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int adamcore_max_threads(void) { return omp_get_max_threads(); }

/* ---- the step ---------------------------------------------------------- */

int adamcore_adam_hyper_valid(const adamcore_adam_hyper *h)
{
    /* Written so that NaN fails every test. */
    return h != NULL && h->lr >= 0.0 && isfinite(h->lr) &&
           h->beta1 >= 0.0 && h->beta1 < 1.0 && h->beta2 >= 0.0 && h->beta2 < 1.0 &&
           h->eps >= 0.0 && isfinite(h->eps) &&
           h->weight_decay >= 0.0 && isfinite(h->weight_decay) && !(h->grad_scale < 0.0) &&
           h->step >= 1 &&
           (h->eps_mode == ADAMCORE_EPS_TORCH || h->eps_mode == ADAMCORE_EPS_KERAS) &&
           h->state_format >= ADAMCORE_STATE_NATIVE && h->state_format <= ADAMCORE_STATE_INT8;
}

/* Per-step scalars in double, once per call (the same expressions as
 * adamcore/reference.py: adam_scalars). */
static adamcore_scalars_f64 adam_scalars(const adamcore_adam_hyper *h)
{
    adamcore_scalars_f64 s;
    const double bc1 = 1.0 - pow(h->beta1, (double)h->step);
    const double bc2 = 1.0 - pow(h->beta2, (double)h->step);
    s.b1 = h->beta1;
    s.omb1 = 1.0 - h->beta1;
    s.b2 = h->beta2;
    s.omb2 = 1.0 - h->beta2;
    s.eps = h->eps;
    if (h->eps_mode == ADAMCORE_EPS_KERAS) {
        s.step_size = h->lr * sqrt(bc2) / bc1;
        s.dscale = 1.0;
    } else {
        s.step_size = h->lr / bc1;
        s.dscale = 1.0 / sqrt(bc2);
    }
    s.wd = h->weight_decay;
    s.decay = 1.0 - h->lr * h->weight_decay;
    s.gscale = h->grad_scale;
    return s;
}

void adamcore_adam_prepare(const adamcore_adam_hyper *h, int is_f64, adamcore_adam_prepared *out)
{
    const adamcore_scalars_f64 d = adam_scalars(h);
    out->f64 = d;
    out->f32.b1 = (float)d.b1; out->f32.omb1 = (float)d.omb1; out->f32.b2 = (float)d.b2;
    out->f32.omb2 = (float)d.omb2; out->f32.eps = (float)d.eps; out->f32.dscale = (float)d.dscale;
    out->f32.step_size = (float)d.step_size; out->f32.wd = (float)d.wd;
    out->f32.decay = (float)d.decay; out->f32.gscale = (float)d.gscale;
    out->scalars = is_f64 ? (const void *)&out->f64 : (const void *)&out->f32;
    const int wd_mode = h->weight_decay == 0.0 ? ADAMCORE_WD_NONE
                        : h->decoupled         ? ADAMCORE_WD_DECOUPLED
                                               : ADAMCORE_WD_COUPLED;
    out->variant = ADAMCORE_VARIANT(h->maximize != 0, h->amsgrad != 0, wd_mode);
    out->fn = adamcore_chunk_for(adamcore_simd_get(), is_f64);
}

/* One call's work, shared by the threads. */
typedef struct {
    const adamcore_tensor *tensors;
    int64_t n_tensors;
    adamcore_chunk_fn fn;
    const void *scalars;
    int variant;
    int64_t esize;
} adam_job;

/* Run [lo, hi) of the concatenated elements of the table on this thread. */
static void run_range(const void *ctx, int64_t lo, int64_t hi)
{
    const adam_job *j = (const adam_job *)ctx;
    const int64_t esize = j->esize;
    int64_t off = 0;
    for (int64_t i = 0; i < j->n_tensors && off < hi; i++) {
        const adamcore_tensor *t = &j->tensors[i];
        const int64_t n = t->n;
        const int64_t a = lo > off ? lo - off : 0;
        const int64_t b = hi < off + n ? hi - off : n;
        if (a < b) {
            j->fn((char *)t->param + a * esize, (const char *)t->grad + a * esize,
                  (char *)t->state[0] + a * esize, (char *)t->state[1] + a * esize,
                  t->state[2] ? (char *)t->state[2] + a * esize : NULL,
                  b - a, j->scalars, j->variant);
        }
        off += n;
    }
}

static int adam_step(const adamcore_tensor *tensors, int64_t n_tensors,
                     const adamcore_adam_hyper *h, int n_threads, int is_f64)
{
    if (!adamcore_adam_hyper_valid(h) || n_tensors < 0 || (n_tensors > 0 && tensors == NULL) ||
        n_threads < 1)
        return ADAMCORE_EINVAL;
    int64_t total = 0;
    for (int64_t i = 0; i < n_tensors; i++) {
        const adamcore_tensor *t = &tensors[i];
        if (t->n < 0) return ADAMCORE_EINVAL;
        if (t->n > 0 && (!t->param || !t->grad || !t->state[0] || !t->state[1] ||
                         (h->amsgrad && !t->state[2])))
            return ADAMCORE_EINVAL;
        total += t->n;
    }
    if (total == 0) return ADAMCORE_OK;
    if (h->state_format != ADAMCORE_STATE_NATIVE)
        return adamcore_adam_lowp_step(tensors, n_tensors, h, n_threads, is_f64);

    adamcore_adam_prepared prep;
    adamcore_adam_prepare(h, is_f64, &prep);
    adam_job job = {tensors, n_tensors, prep.fn, prep.scalars, prep.variant, is_f64 ? 8 : 4};
    adamcore_split(total, n_threads, run_range, &job);
    return ADAMCORE_OK;
}

int adamcore_adam_step_f32(const adamcore_tensor *tensors, int64_t n_tensors,
                           const adamcore_adam_hyper *hyper, int n_threads)
{
    return adam_step(tensors, n_tensors, hyper, n_threads, 0);
}

int adamcore_adam_step_f64(const adamcore_tensor *tensors, int64_t n_tensors,
                           const adamcore_adam_hyper *hyper, int n_threads)
{
    return adam_step(tensors, n_tensors, hyper, n_threads, 1);
}
