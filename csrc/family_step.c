/* The optimizer family's entry points: validate, compute the per-step scalars
 * once in double, choose the SIMD kernel, split over threads (parallel.c).
 * The loops and formulas are in family_body.h. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include "family_internal.h"

static int real_ok(double x) { return x >= 0.0 && isfinite(x); } /* NaN fails */

static int hyper_valid(const adamcore_family_hyper *h)
{
    if (h == NULL || !real_ok(h->lr) || !real_ok(h->weight_decay) || h->grad_scale < 0.0)
        return 0;
    switch (h->kind) {
    case ADAMCORE_SGD:
        return real_ok(h->momentum) && isfinite(h->dampening) &&
               (!h->nesterov || (h->momentum > 0.0 && h->dampening == 0.0));
    case ADAMCORE_RMSPROP:
        return real_ok(h->alpha) && real_ok(h->eps) && real_ok(h->momentum);
    case ADAMCORE_ADAGRAD:
        return real_ok(h->lr_decay) && real_ok(h->eps) && h->step >= 1;
    case ADAMCORE_ADABELIEF:
        return h->beta1 >= 0.0 && h->beta1 < 1.0 && h->beta2 >= 0.0 && h->beta2 < 1.0 &&
               real_ok(h->eps) && h->step >= 1;
    default:
        return 0;
    }
}

/* Which state slots the call needs (bit k: state[k]); see adamcore.h. */
static int required_slots(const adamcore_family_hyper *h)
{
    switch (h->kind) {
    case ADAMCORE_SGD: return h->momentum != 0.0 ? 1 : 0;
    case ADAMCORE_RMSPROP:
        return 1 | (h->momentum != 0.0 ? 2 : 0) | (h->centered ? 4 : 0);
    case ADAMCORE_ADAGRAD: return 1;
    default: return 3 | (h->amsgrad ? 4 : 0);
    }
}

/* AdaBelief's rectification (RAdam, as adabelief-pytorch 0.2 computes it,
 * in double): with rho_inf = 2/(1-b2) - 1 and
 * rho_t = rho_inf - 2 t b2^t / (1 - b2^t), the step is rectified,
 *   step_size = lr * sqrt((1-b2^t)(rho_t-4)/(rho_inf-4)(rho_t-2)/rho_t
 *                         * rho_inf/(rho_inf-2)) / (1-b1^t),  dscale = 1,
 * once rho_t >= 5; before, it is SGD with momentum: step_size = lr/(1-b1^t)
 * and no denominator. Returns whether this step has no denominator. */
static int rectified(const adamcore_family_hyper *h, double *step_size, double *dscale)
{
    const double t = (double)h->step, b2t = pow(h->beta2, t);
    const double bc1 = 1.0 - pow(h->beta1, t);
    const double rho_inf = 2.0 / (1.0 - h->beta2) - 1.0;
    const double rho = rho_inf - 2.0 * t * b2t / (1.0 - b2t);
    *dscale = 1.0;
    if (rho >= 5.0) {
        *step_size = h->lr * sqrt((1.0 - b2t) * (rho - 4.0) / (rho_inf - 4.0) * (rho - 2.0) /
                                  rho * rho_inf / (rho_inf - 2.0)) / bc1;
        return 0;
    }
    *step_size = h->lr / bc1;
    return 1;
}

static int loop_flags(const adamcore_family_hyper *h)
{
    const int decoupled = h->kind == ADAMCORE_ADABELIEF && h->decoupled;
    int f = h->weight_decay == 0.0 ? 0 : decoupled ? FAM_DECOUPLED : FAM_WD;
    if (h->kind == ADAMCORE_SGD && h->momentum != 0.0)
        f |= FAM_MOMENTUM | (h->nesterov ? FAM_NESTEROV : 0) | (h->first ? FAM_FIRST : 0);
    if (h->kind == ADAMCORE_RMSPROP)
        f |= (h->momentum != 0.0 ? FAM_MOMENTUM : 0) | (h->centered ? FAM_CENTERED : 0);
    if (h->kind == ADAMCORE_ADABELIEF && h->amsgrad) f |= FAM_AMSGRAD;
    if (h->kind == ADAMCORE_ADABELIEF && h->rectify) {
        double step_size, dscale;
        if (rectified(h, &step_size, &dscale)) f |= FAM_NO_DENOM;
    }
    return f;
}

/* Per-step scalars in double, once per call (the same expressions as
 * adamcore/reference.py: family_scalars). */
static adamcore_family_scalars_f64 family_scalars(const adamcore_family_hyper *h)
{
    adamcore_family_scalars_f64 s = {0};
    s.gscale = h->maximize ? -h->grad_scale : h->grad_scale;
    s.lr = h->lr;
    s.wd = h->weight_decay;
    s.mom = h->momentum;
    s.omd = 1.0 - h->dampening;
    s.alpha = h->alpha;
    s.oma = 1.0 - h->alpha;
    s.eps = h->eps;
    if (h->kind == ADAMCORE_ADAGRAD)
        s.lr = h->lr / (1.0 + (double)(h->step - 1) * h->lr_decay);
    if (h->kind == ADAMCORE_ADABELIEF) {
        const double bc1 = 1.0 - pow(h->beta1, (double)h->step);
        const double bc2 = 1.0 - pow(h->beta2, (double)h->step);
        s.b1 = h->beta1;
        s.omb1 = 1.0 - h->beta1;
        s.b2 = h->beta2;
        s.omb2 = 1.0 - h->beta2;
        s.dscale = 1.0 / sqrt(bc2);
        s.step_size = h->lr / bc1;
        s.decay = 1.0 - h->lr * h->weight_decay;
        if (h->rectify) rectified(h, &s.step_size, &s.dscale);
    }
    return s;
}

static adamcore_family_fn family_fn(int level, int is_f64)
{
#ifdef ADAMCORE_X86
    if (level == ADAMCORE_SIMD_AVX512)
        return is_f64 ? adamcore_family_f64_avx512 : adamcore_family_f32_avx512;
    if (level == ADAMCORE_SIMD_AVX2)
        return is_f64 ? adamcore_family_f64_avx2 : adamcore_family_f32_avx2;
#endif
    (void)level;
    return is_f64 ? adamcore_family_f64_baseline : adamcore_family_f32_baseline;
}

/* One call's work, shared by the threads. */
typedef struct {
    const adamcore_tensor *tensors;
    int64_t n_tensors;
    adamcore_family_fn fn;
    const void *scalars;
    int kind, flags;
    int64_t esize;
} family_job;

#define AT(ptr, a) ((ptr) ? (char *)(ptr) + (a) * j->esize : NULL)

/* Run [lo, hi) of the concatenated elements of the table on this thread. */
static void run_range(const void *ctx, int64_t lo, int64_t hi)
{
    const family_job *j = (const family_job *)ctx;
    int64_t off = 0;
    for (int64_t i = 0; i < j->n_tensors && off < hi; i++) {
        const adamcore_tensor *t = &j->tensors[i];
        const int64_t a = lo > off ? lo - off : 0;
        const int64_t b = hi < off + t->n ? hi - off : t->n;
        if (a < b)
            j->fn(AT(t->param, a), AT(t->grad, a), AT(t->state[0], a), AT(t->state[1], a),
                  AT(t->state[2], a), b - a, j->scalars, j->kind, j->flags);
        off += t->n;
    }
}

#undef AT

static int family_step(const adamcore_tensor *tensors, int64_t n_tensors,
                       const adamcore_family_hyper *h, int n_threads, int is_f64)
{
    if (!hyper_valid(h) || n_tensors < 0 || (n_tensors > 0 && tensors == NULL) ||
        n_threads < 1)
        return ADAMCORE_EINVAL;
    const int slots = required_slots(h);
    int64_t total = 0;
    for (int64_t i = 0; i < n_tensors; i++) {
        const adamcore_tensor *t = &tensors[i];
        if (t->n < 0) return ADAMCORE_EINVAL;
        for (int k = 0; k < 3; k++)  /* a slot is given exactly when required */
            if ((t->state[k] != NULL) != ((slots >> k) & 1) && t->n > 0) return ADAMCORE_EINVAL;
        if (t->n > 0 && (!t->param || !t->grad)) return ADAMCORE_EINVAL;
        total += t->n;
    }
    if (total == 0) return ADAMCORE_OK;

    const adamcore_family_scalars_f64 d = family_scalars(h);
    adamcore_family_scalars_f32 f;
    family_job job = {tensors, n_tensors, family_fn(adamcore_simd_get(), is_f64), &d,
                      h->kind, loop_flags(h), is_f64 ? 8 : 4};
    if (!is_f64) {
        f.gscale = (float)d.gscale; f.lr = (float)d.lr; f.wd = (float)d.wd;
        f.decay = (float)d.decay; f.mom = (float)d.mom; f.omd = (float)d.omd;
        f.alpha = (float)d.alpha; f.oma = (float)d.oma; f.eps = (float)d.eps;
        f.b1 = (float)d.b1; f.omb1 = (float)d.omb1; f.b2 = (float)d.b2;
        f.omb2 = (float)d.omb2; f.dscale = (float)d.dscale; f.step_size = (float)d.step_size;
        job.scalars = &f;
    }
    adamcore_split(total, n_threads, run_range, &job);
    return ADAMCORE_OK;
}

int adamcore_family_step_f32(const adamcore_tensor *tensors, int64_t n_tensors,
                             const adamcore_family_hyper *hyper, int n_threads)
{
    return family_step(tensors, n_tensors, hyper, n_threads, 0);
}

int adamcore_family_step_f64(const adamcore_tensor *tensors, int64_t n_tensors,
                             const adamcore_family_hyper *hyper, int n_threads)
{
    return family_step(tensors, n_tensors, hyper, n_threads, 1);
}
