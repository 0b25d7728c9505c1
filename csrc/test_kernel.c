/* C-only test of the Adam kernel and the optimizer family's kernel (SGD,
 * RMSprop, Adagrad, AdaBelief): no Python, runs under sanitizers and valgrind.
 *
 * Each case steps random data with the kernel at every SIMD level and several
 * thread counts, and compares bitwise with a plain scalar loop written here
 * from the formulas (same operations, same order; -ffp-contract=off). Sizes
 * 0..67 hit every vector tail and peel; offsets misalign the start. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "adamcore.h"

static int failures = 0;

#define CHECK(cond, ...)                                                     \
    do {                                                                      \
        if (!(cond)) {                                                        \
            failures++;                                                       \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);              \
            fprintf(stderr, __VA_ARGS__);                                     \
            fputc('\n', stderr);                                              \
        }                                                                     \
    } while (0)

static uint64_t rng_state = 88172645463325252ull;
static double rnd(void) /* xorshift64: uniform in [-1, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / 9007199254740992.0 * 2.0 - 1.0;
}

#define DEFINE_SCALAR_ADAM(T, SUF, SQRT)                                           \
    static void scalar_adam_##SUF(T *p, const T *g, T *m, T *v, T *vmax, int64_t n, \
                                  const adamcore_adam_hyper *h)                     \
    {                                                                               \
        const double bc1 = 1.0 - pow(h->beta1, (double)h->step);                    \
        const double bc2 = 1.0 - pow(h->beta2, (double)h->step);                    \
        const int keras = h->eps_mode == ADAMCORE_EPS_KERAS;                        \
        const T b1 = (T)h->beta1, omb1 = (T)(1.0 - h->beta1);                       \
        const T b2 = (T)h->beta2, omb2 = (T)(1.0 - h->beta2);                       \
        const T eps = (T)h->eps, wd = (T)h->weight_decay;                           \
        const T decay = (T)(1.0 - h->lr * h->weight_decay);                         \
        const T gscale = (T)h->grad_scale;                                          \
        const T step_size = (T)(keras ? h->lr * sqrt(bc2) / bc1 : h->lr / bc1);     \
        const T dscale = (T)(keras ? 1.0 : 1.0 / sqrt(bc2));                        \
        for (int64_t i = 0; i < n; i++) {                                           \
            T gi = g[i] * gscale;                                                   \
            if (h->maximize) gi = -gi;                                              \
            T pi = p[i];                                                            \
            if (h->weight_decay != 0.0 && !h->decoupled) gi = gi + wd * pi;         \
            if (h->weight_decay != 0.0 && h->decoupled) pi = pi * decay;            \
            m[i] = b1 * m[i] + omb1 * gi;                                           \
            v[i] = b2 * v[i] + omb2 * (gi * gi);                                    \
            T vh = v[i];                                                            \
            if (h->amsgrad) {                                                       \
                vmax[i] = (vmax[i] > vh || vmax[i] != vmax[i]) ? vmax[i] : vh;     \
                vh = vmax[i];                                                       \
            }                                                                       \
            p[i] = pi - step_size * (m[i] / (SQRT(vh) * dscale + eps));             \
        }                                                                           \
    }

DEFINE_SCALAR_ADAM(float, f32, sqrtf)
DEFINE_SCALAR_ADAM(double, f64, sqrt)

enum { N_ARRAYS = 5 }; /* p, g, m, v, vmax */

/* Step one buffer set of n elements (starting `offset` elements into each
 * allocation) `steps` times with the kernel and with the scalar loop. */
static void run_case(int is_f64, int64_t n, int offset, const adamcore_adam_hyper *base,
                     int level, int n_threads, int steps)
{
    const size_t es = is_f64 ? 8 : 4;
    char *k[N_ARRAYS], *r[N_ARRAYS];
    for (int a = 0; a < N_ARRAYS; a++) {
        k[a] = malloc((size_t)(n + offset + 1) * es);
        r[a] = malloc((size_t)(n + offset + 1) * es);
        for (int64_t i = 0; i < n + offset + 1; i++) {
            const double x = a < 2 ? rnd() : (a == 2 ? 0.1 * rnd() : 0.01 * fabs(rnd()));
            if (is_f64) ((double *)k[a])[i] = x; else ((float *)k[a])[i] = (float)x;
        }
        memcpy(r[a], k[a], (size_t)(n + offset + 1) * es);
    }
    char *kp[N_ARRAYS], *rp[N_ARRAYS];
    for (int a = 0; a < N_ARRAYS; a++) {
        kp[a] = k[a] + (size_t)offset * es;
        rp[a] = r[a] + (size_t)offset * es;
    }
    /* Two tensors split the buffer, so the thread split crosses a boundary. */
    const int64_t n0 = n / 3;
    adamcore_tensor t[2];
    for (int j = 0; j < 2; j++) {
        const size_t at = j ? (size_t)n0 * es : 0;
        t[j].param = kp[0] + at;
        t[j].grad = kp[1] + at;
        t[j].state[0] = kp[2] + at;
        t[j].state[1] = kp[3] + at;
        t[j].state[2] = base->amsgrad ? kp[4] + at : NULL;
        t[j].n = j ? n - n0 : n0;
    }
    CHECK(adamcore_simd_set(level) == ADAMCORE_OK, "set level %d", level);
    for (int s = 1; s <= steps; s++) {
        adamcore_adam_hyper h = *base;
        h.step = s;
        const int st = is_f64 ? adamcore_adam_step_f64(t, 2, &h, n_threads)
                              : adamcore_adam_step_f32(t, 2, &h, n_threads);
        CHECK(st == ADAMCORE_OK, "status %d", st);
        if (is_f64)
            scalar_adam_f64((double *)rp[0], (double *)rp[1], (double *)rp[2], (double *)rp[3],
                            (double *)rp[4], n, &h);
        else
            scalar_adam_f32((float *)rp[0], (float *)rp[1], (float *)rp[2], (float *)rp[3],
                            (float *)rp[4], n, &h);
    }
    for (int a = 0; a < N_ARRAYS; a++)
        CHECK(memcmp(k[a], r[a], (size_t)(n + offset + 1) * es) == 0,
              "%s n=%lld offset=%d level=%s threads=%d array=%d amsgrad=%d maximize=%d "
              "wd=%g decoupled=%d eps_mode=%d",
              is_f64 ? "f64" : "f32", (long long)n, offset, adamcore_simd_name(level),
              n_threads, a, base->amsgrad, base->maximize, base->weight_decay,
              base->decoupled, base->eps_mode);
    for (int a = 0; a < N_ARRAYS; a++) {
        free(k[a]);
        free(r[a]);
    }
}

static void test_invalid(void)
{
    float x = 0;
    adamcore_tensor t = {&x, &x, {&x, &x, NULL}, 1, {NULL, NULL, NULL}, 0};
    const adamcore_adam_hyper ok = {1e-3, 0.9, 0.999, 1e-8, 0.0, 1.0, 1, 0, 0, 0, ADAMCORE_EPS_TORCH, ADAMCORE_STATE_NATIVE};
    adamcore_adam_hyper h;
#define EXPECT_EINVAL(field, value)                                                  \
    h = ok;                                                                          \
    h.field = value;                                                                 \
    CHECK(adamcore_adam_step_f32(&t, 1, &h, 1) == ADAMCORE_EINVAL, #field "=" #value)
    EXPECT_EINVAL(lr, -1.0);
    EXPECT_EINVAL(lr, NAN);
    EXPECT_EINVAL(lr, INFINITY);
    EXPECT_EINVAL(beta1, 1.0);
    EXPECT_EINVAL(beta2, -0.1);
    EXPECT_EINVAL(beta2, NAN);
    EXPECT_EINVAL(eps, -1e-8);
    EXPECT_EINVAL(weight_decay, -1.0);
    EXPECT_EINVAL(step, 0);
    EXPECT_EINVAL(grad_scale, -0.5);
    EXPECT_EINVAL(eps_mode, 7);
    EXPECT_EINVAL(amsgrad, 1); /* amsgrad with a NULL max_exp_avg_sq */
    CHECK(adamcore_adam_step_f32(&t, 1, &ok, 0) == ADAMCORE_EINVAL, "n_threads=0");
    CHECK(adamcore_adam_step_f32(NULL, 1, &ok, 1) == ADAMCORE_EINVAL, "NULL table");
    CHECK(adamcore_adam_step_f32(&t, 1, NULL, 1) == ADAMCORE_EINVAL, "NULL hyper");
    t.n = -1;
    CHECK(adamcore_adam_step_f32(&t, 1, &ok, 1) == ADAMCORE_EINVAL, "n=-1");
    CHECK(x == 0.0f, "a refused call wrote");
    CHECK(adamcore_adam_step_f64(NULL, 0, &ok, 1) == ADAMCORE_OK, "empty table");
    CHECK(adamcore_simd_set(ADAMCORE_SIMD_COUNT) == ADAMCORE_EUNSUPPORTED, "bad level");
}

/* ---- the optimizer family ---------------------------------------------------
 * The scalar loop below is written from the per-element formulas of
 * family_body.h's comment, in the order given there; the per-step scalars are
 * computed in double, then cast once to T. */
#define DEFINE_SCALAR_FAMILY(T, SUF, SQRT)                                              \
    static void scalar_family_##SUF(T *p, const T *g, T *s0, T *s1, T *s2, int64_t n,   \
                                    const adamcore_family_hyper *h)                     \
    {                                                                                   \
        const int kind = h->kind;                                                       \
        const double bc1 = 1.0 - pow(h->beta1, (double)h->step);                        \
        const double bc2 = 1.0 - pow(h->beta2, (double)h->step);                        \
        const T gscale = (T)(h->maximize ? -h->grad_scale : h->grad_scale);             \
        const T lr = (T)(kind == ADAMCORE_ADAGRAD                                       \
                             ? h->lr / (1.0 + (double)(h->step - 1) * h->lr_decay)      \
                             : h->lr);                                                  \
        const T wd = (T)h->weight_decay, mom = (T)h->momentum;                          \
        const T omd = (T)(1.0 - h->dampening);                                          \
        const T alpha = (T)h->alpha, oma = (T)(1.0 - h->alpha), eps = (T)h->eps;        \
        const T b1 = (T)h->beta1, omb1 = (T)(1.0 - h->beta1);                           \
        const T b2 = (T)h->beta2, omb2 = (T)(1.0 - h->beta2);                           \
        const T dscale = (T)(1.0 / sqrt(bc2)), step_size = (T)(h->lr / bc1);            \
        const T decay = (T)(1.0 - h->lr * h->weight_decay);                             \
        const int decoupled = kind == ADAMCORE_ADABELIEF && h->decoupled;               \
        for (int64_t i = 0; i < n; i++) {                                               \
            T gi = g[i] * gscale;                                                       \
            T pi = p[i];                                                                \
            if (h->weight_decay != 0.0 && !decoupled) gi = gi + wd * pi;                \
            if (kind == ADAMCORE_SGD) {                                                 \
                if (h->momentum != 0.0) {                                               \
                    const T b = h->first ? gi : mom * s0[i] + omd * gi;                 \
                    s0[i] = b;                                                          \
                    gi = h->nesterov ? gi + mom * b : b;                                \
                }                                                                       \
                p[i] = pi - lr * gi;                                                    \
            } else if (kind == ADAMCORE_RMSPROP) {                                      \
                const T sq = alpha * s0[i] + oma * (gi * gi);                           \
                s0[i] = sq;                                                             \
                T avg;                                                                  \
                if (h->centered) {                                                      \
                    const T ga = s2[i] + oma * (gi - s2[i]);                            \
                    s2[i] = ga;                                                         \
                    avg = SQRT(sq - ga * ga) + eps;                                     \
                } else {                                                                \
                    avg = SQRT(sq) + eps;                                               \
                }                                                                       \
                if (h->momentum != 0.0) {                                               \
                    const T b = mom * s1[i] + gi / avg;                                 \
                    s1[i] = b;                                                          \
                    p[i] = pi - lr * b;                                                 \
                } else {                                                                \
                    p[i] = pi - lr * (gi / avg);                                        \
                }                                                                       \
            } else if (kind == ADAMCORE_ADAGRAD) {                                      \
                const T sum = s0[i] + gi * gi;                                          \
                s0[i] = sum;                                                            \
                p[i] = pi - lr * (gi / (SQRT(sum) + eps));                              \
            } else {                                                                    \
                if (decoupled && h->weight_decay != 0.0) pi = pi * decay;               \
                const T m = b1 * s0[i] + omb1 * gi;                                     \
                const T r = gi - m;                                                     \
                T v = (b2 * s1[i] + omb2 * (r * r)) + eps;                              \
                s0[i] = m;                                                              \
                s1[i] = v;                                                              \
                if (h->amsgrad) {                                                       \
                    v = (s2[i] > v || s2[i] != s2[i]) ? s2[i] : v;                      \
                    s2[i] = v;                                                          \
                }                                                                       \
                p[i] = pi - step_size * (m / (SQRT(v) * dscale + eps));                 \
            }                                                                           \
        }                                                                               \
    }

DEFINE_SCALAR_FAMILY(float, f32, sqrtf)
DEFINE_SCALAR_FAMILY(double, f64, sqrt)

static const char *kind_name(int kind)
{
    static const char *names[] = {"sgd", "rmsprop", "adagrad", "adabelief"};
    return kind >= 0 && kind < 4 ? names[kind] : "?";
}

/* Which state slots a hyper uses (bit k: state[k]), written from adamcore.h. */
static int family_slots(const adamcore_family_hyper *h)
{
    switch (h->kind) {
    case ADAMCORE_SGD: return h->momentum != 0.0 ? 1 : 0;
    case ADAMCORE_RMSPROP: return 1 | (h->momentum != 0.0 ? 2 : 0) | (h->centered ? 4 : 0);
    case ADAMCORE_ADAGRAD: return 1;
    default: return 3 | (h->amsgrad ? 4 : 0);
    }
}

/* Step one buffer set (p, g, state[0..2]) of n elements, `offset` elements into
 * each allocation, `steps` times with the kernel and with the scalar loop, as
 * two tensors; `first` (SGD) holds on step 1 only when base->first is set. */
static void run_family_case(int is_f64, int64_t n, int offset, const adamcore_family_hyper *base,
                            int level, int n_threads, int steps)
{
    const size_t es = is_f64 ? 8 : 4;
    const size_t len = (size_t)(n + offset + 1);
    const int slots = family_slots(base);
    char *k[N_ARRAYS], *r[N_ARRAYS];
    for (int a = 0; a < N_ARRAYS; a++) {
        k[a] = malloc(len * es);
        r[a] = malloc(len * es);
        for (size_t i = 0; i < len; i++) {
            double x = rnd();
            if (a >= 2) { /* state: positive where it is a mean of squares */
                const int positive = (base->kind == ADAMCORE_RMSPROP && a == 2) ||
                                     base->kind == ADAMCORE_ADAGRAD ||
                                     (base->kind == ADAMCORE_ADABELIEF && a >= 3);
                x = positive ? 0.01 * fabs(x) + 1e-6 : 0.1 * x;
            }
            if (is_f64) ((double *)k[a])[i] = x; else ((float *)k[a])[i] = (float)x;
        }
        if (base->kind == ADAMCORE_RMSPROP && a == 4) /* |grad_avg| < sqrt(square_avg) */
            for (size_t i = 0; i < len; i++) {
                if (is_f64) {
                    double *ga = (double *)k[4], *sq = (double *)k[2];
                    ga[i] = 0.5 * rnd() * sqrt(sq[i]);
                } else {
                    float *ga = (float *)k[4], *sq = (float *)k[2];
                    ga[i] = (float)(0.5 * rnd()) * sqrtf(sq[i]);
                }
            }
        memcpy(r[a], k[a], len * es);
    }
    char *kp[N_ARRAYS], *rp[N_ARRAYS];
    for (int a = 0; a < N_ARRAYS; a++) {
        kp[a] = k[a] + (size_t)offset * es;
        rp[a] = r[a] + (size_t)offset * es;
    }
    const int64_t n0 = n / 3;
    adamcore_tensor t[2];
    for (int j = 0; j < 2; j++) {
        const size_t at = j ? (size_t)n0 * es : 0;
        t[j].param = kp[0] + at;
        t[j].grad = kp[1] + at;
        for (int s = 0; s < 3; s++) t[j].state[s] = (slots >> s) & 1 ? kp[2 + s] + at : NULL;
        t[j].n = j ? n - n0 : n0;
    }
    CHECK(adamcore_simd_set(level) == ADAMCORE_OK, "set level %d", level);
    for (int s = 1; s <= steps; s++) {
        adamcore_family_hyper h = *base;
        h.step = s;
        h.first = base->first && s == 1;
        const int st = is_f64 ? adamcore_family_step_f64(t, 2, &h, n_threads)
                              : adamcore_family_step_f32(t, 2, &h, n_threads);
        CHECK(st == ADAMCORE_OK, "status %d", st);
        if (is_f64)
            scalar_family_f64((double *)rp[0], (double *)rp[1], (double *)rp[2], (double *)rp[3],
                              (double *)rp[4], n, &h);
        else
            scalar_family_f32((float *)rp[0], (float *)rp[1], (float *)rp[2], (float *)rp[3],
                              (float *)rp[4], n, &h);
    }
    for (int a = 0; a < N_ARRAYS; a++)
        CHECK(memcmp(k[a], r[a], len * es) == 0,
              "family %s %s n=%lld offset=%d level=%s threads=%d array=%d momentum=%g "
              "dampening=%g nesterov=%d first=%d centered=%d lr_decay=%g amsgrad=%d wd=%g "
              "decoupled=%d maximize=%d grad_scale=%g",
              kind_name(base->kind), is_f64 ? "f64" : "f32", (long long)n, offset,
              adamcore_simd_name(level), n_threads, a, base->momentum, base->dampening,
              base->nesterov, base->first, base->centered, base->lr_decay, base->amsgrad,
              base->weight_decay, base->decoupled, base->maximize, base->grad_scale);
    for (int a = 0; a < N_ARRAYS; a++) {
        free(k[a]);
        free(r[a]);
    }
}

static adamcore_family_hyper family_base(int kind)
{
    adamcore_family_hyper h;
    memset(&h, 0, sizeof h);
    h.kind = kind;
    h.grad_scale = 1.0;
    h.step = 1;
    switch (kind) {
    case ADAMCORE_SGD: h.lr = 1e-2; break;
    case ADAMCORE_RMSPROP: h.lr = 1e-3; h.alpha = 0.9; h.eps = 1e-8; break;
    case ADAMCORE_ADAGRAD: h.lr = 5e-2; h.eps = 1e-10; break;
    default: h.lr = 1e-3; h.beta1 = 0.9; h.beta2 = 0.999; h.eps = 1e-16; break;
    }
    return h;
}

/* Every flag combination of every kind: returns how many, filling out[]. */
static int family_variants(adamcore_family_hyper *out)
{
    int count = 0;
    for (int v = 0; v < 4 * 7; v++) { /* SGD: 7 momentum forms x wd x maximize */
        adamcore_family_hyper h = family_base(ADAMCORE_SGD);
        const int form = v % 7;
        h.weight_decay = (v / 7) & 1 ? 0.1 : 0.0;
        h.maximize = (v / 14) & 1;
        if (form > 0) {
            h.momentum = 0.9;
            h.first = form % 2 == 0;                   /* forms 2, 4, 6 */
            if (form >= 3 && form <= 4) h.dampening = 0.3;
            if (form >= 5) h.nesterov = 1;
        }
        out[count++] = h;
    }
    for (int v = 0; v < 16; v++) {
        adamcore_family_hyper h = family_base(ADAMCORE_RMSPROP);
        h.momentum = v & 1 ? 0.9 : 0.0;
        h.centered = (v >> 1) & 1;
        h.weight_decay = (v >> 2) & 1 ? 0.1 : 0.0;
        h.maximize = (v >> 3) & 1;
        out[count++] = h;
    }
    for (int v = 0; v < 8; v++) {
        adamcore_family_hyper h = family_base(ADAMCORE_ADAGRAD);
        h.lr_decay = v & 1 ? 0.01 : 0.0;
        h.weight_decay = (v >> 1) & 1 ? 0.1 : 0.0;
        h.maximize = (v >> 2) & 1;
        out[count++] = h;
    }
    for (int v = 0; v < 12; v++) {
        adamcore_family_hyper h = family_base(ADAMCORE_ADABELIEF);
        const int wd = v % 3; /* 0 none, 1 L2, 2 decoupled */
        h.weight_decay = wd ? 0.1 : 0.0;
        h.decoupled = wd == 2;
        h.amsgrad = (v / 3) & 1;
        h.maximize = (v / 6) & 1;
        out[count++] = h;
    }
    for (int i = 0; i < count; i++)
        if (i % 3 == 1) out[i].grad_scale = 0.37;
    return count;
}

static void test_family_invalid(void)
{
    float x[4] = {0, 0, 0, 0}, y[4] = {1, 1, 1, 1}, s[3][4] = {{0}};
    adamcore_tensor t = {x, y, {s[0], s[1], s[2]}, 4, {NULL, NULL, NULL}, 0};
    adamcore_family_hyper h;
#define FAMILY_EINVAL(kind, state0, state1, state2, field, value)                          \
    do {                                                                                    \
        h = family_base(kind);                                                              \
        h.field = value;                                                                    \
        t.state[0] = state0; t.state[1] = state1; t.state[2] = state2;                      \
        CHECK(adamcore_family_step_f32(&t, 1, &h, 1) == ADAMCORE_EINVAL,                    \
              "%s " #field "=" #value " slots %d%d%d", kind_name(kind), state0 != NULL,     \
              state1 != NULL, state2 != NULL);                                              \
    } while (0)
    for (int kind = 0; kind < 4; kind++) {
        /* A valid slot set for the kind's defaults, to vary one field at a time. */
        float *a = kind == ADAMCORE_SGD ? NULL : s[0];
        float *b = kind == ADAMCORE_ADABELIEF ? s[1] : NULL;
        FAMILY_EINVAL(kind, a, b, NULL, lr, -1.0);
        FAMILY_EINVAL(kind, a, b, NULL, lr, NAN);
        FAMILY_EINVAL(kind, a, b, NULL, lr, INFINITY);
        FAMILY_EINVAL(kind, a, b, NULL, weight_decay, -0.1);
        FAMILY_EINVAL(kind, a, b, NULL, weight_decay, NAN);
        FAMILY_EINVAL(kind, a, b, NULL, weight_decay, INFINITY);
        FAMILY_EINVAL(kind, a, b, NULL, grad_scale, -0.5);
        FAMILY_EINVAL(kind, a, b, NULL, kind, 4);
        FAMILY_EINVAL(kind, a, b, NULL, kind, -1);
        if (kind != ADAMCORE_SGD) {
            FAMILY_EINVAL(kind, a, b, NULL, eps, -1e-8);
            FAMILY_EINVAL(kind, a, b, NULL, eps, NAN);
            FAMILY_EINVAL(kind, a, b, NULL, eps, INFINITY);
        }
    }
    /* SGD */
    FAMILY_EINVAL(ADAMCORE_SGD, s[0], NULL, NULL, momentum, -0.9);
    FAMILY_EINVAL(ADAMCORE_SGD, s[0], NULL, NULL, momentum, NAN);
    FAMILY_EINVAL(ADAMCORE_SGD, s[0], NULL, NULL, momentum, INFINITY);
    FAMILY_EINVAL(ADAMCORE_SGD, NULL, NULL, NULL, dampening, NAN);
    FAMILY_EINVAL(ADAMCORE_SGD, NULL, NULL, NULL, dampening, INFINITY);
    FAMILY_EINVAL(ADAMCORE_SGD, NULL, NULL, NULL, nesterov, 1);          /* momentum 0 */
    h = family_base(ADAMCORE_SGD);
    h.momentum = 0.9;
    h.nesterov = 1;
    h.dampening = 0.5;
    t.state[0] = s[0]; t.state[1] = t.state[2] = NULL;
    CHECK(adamcore_family_step_f32(&t, 1, &h, 1) == ADAMCORE_EINVAL, "nesterov with dampening");
    FAMILY_EINVAL(ADAMCORE_SGD, NULL, NULL, NULL, momentum, 0.9);        /* no buffer */
    FAMILY_EINVAL(ADAMCORE_SGD, s[0], NULL, NULL, momentum, 0.0);        /* unused buffer */
    FAMILY_EINVAL(ADAMCORE_SGD, NULL, s[1], NULL, momentum, 0.0);        /* slot 1 unused */
    FAMILY_EINVAL(ADAMCORE_SGD, s[0], NULL, s[2], momentum, 0.9);        /* slot 2 unused */
    /* RMSprop */
    FAMILY_EINVAL(ADAMCORE_RMSPROP, s[0], NULL, NULL, alpha, -0.1);
    FAMILY_EINVAL(ADAMCORE_RMSPROP, s[0], NULL, NULL, alpha, NAN);
    FAMILY_EINVAL(ADAMCORE_RMSPROP, s[0], NULL, NULL, alpha, INFINITY);
    FAMILY_EINVAL(ADAMCORE_RMSPROP, s[0], s[1], NULL, momentum, -0.5);
    FAMILY_EINVAL(ADAMCORE_RMSPROP, s[0], s[1], NULL, momentum, NAN);
    FAMILY_EINVAL(ADAMCORE_RMSPROP, NULL, NULL, NULL, alpha, 0.99);      /* no square_avg */
    FAMILY_EINVAL(ADAMCORE_RMSPROP, s[0], NULL, NULL, momentum, 0.9);    /* no buffer */
    FAMILY_EINVAL(ADAMCORE_RMSPROP, s[0], s[1], NULL, momentum, 0.0);    /* unused buffer */
    FAMILY_EINVAL(ADAMCORE_RMSPROP, s[0], NULL, NULL, centered, 1);      /* no grad_avg */
    FAMILY_EINVAL(ADAMCORE_RMSPROP, s[0], NULL, s[2], centered, 0);      /* unused grad_avg */
    /* Adagrad */
    FAMILY_EINVAL(ADAMCORE_ADAGRAD, s[0], NULL, NULL, lr_decay, -0.1);
    FAMILY_EINVAL(ADAMCORE_ADAGRAD, s[0], NULL, NULL, lr_decay, NAN);
    FAMILY_EINVAL(ADAMCORE_ADAGRAD, s[0], NULL, NULL, lr_decay, INFINITY);
    FAMILY_EINVAL(ADAMCORE_ADAGRAD, s[0], NULL, NULL, step, 0);
    FAMILY_EINVAL(ADAMCORE_ADAGRAD, s[0], NULL, NULL, step, -3);
    FAMILY_EINVAL(ADAMCORE_ADAGRAD, NULL, NULL, NULL, lr_decay, 0.0);    /* no sum */
    FAMILY_EINVAL(ADAMCORE_ADAGRAD, s[0], s[1], NULL, lr_decay, 0.0);    /* slot 1 unused */
    FAMILY_EINVAL(ADAMCORE_ADAGRAD, s[0], NULL, s[2], lr_decay, 0.0);    /* slot 2 unused */
    /* AdaBelief */
    FAMILY_EINVAL(ADAMCORE_ADABELIEF, s[0], s[1], NULL, beta1, 1.0);
    FAMILY_EINVAL(ADAMCORE_ADABELIEF, s[0], s[1], NULL, beta1, -0.1);
    FAMILY_EINVAL(ADAMCORE_ADABELIEF, s[0], s[1], NULL, beta1, NAN);
    FAMILY_EINVAL(ADAMCORE_ADABELIEF, s[0], s[1], NULL, beta2, 1.0);
    FAMILY_EINVAL(ADAMCORE_ADABELIEF, s[0], s[1], NULL, beta2, NAN);
    FAMILY_EINVAL(ADAMCORE_ADABELIEF, s[0], s[1], NULL, step, 0);
    FAMILY_EINVAL(ADAMCORE_ADABELIEF, s[0], NULL, NULL, amsgrad, 0);     /* no exp_avg_var */
    FAMILY_EINVAL(ADAMCORE_ADABELIEF, NULL, s[1], NULL, amsgrad, 0);     /* no exp_avg */
    FAMILY_EINVAL(ADAMCORE_ADABELIEF, s[0], s[1], NULL, amsgrad, 1);     /* no max */
    FAMILY_EINVAL(ADAMCORE_ADABELIEF, s[0], s[1], s[2], amsgrad, 0);     /* unused max */
#undef FAMILY_EINVAL
    /* The table itself. */
    const adamcore_family_hyper ok = family_base(ADAMCORE_ADAGRAD);
    t.state[0] = s[0]; t.state[1] = t.state[2] = NULL;
    CHECK(adamcore_family_step_f32(&t, 1, &ok, 0) == ADAMCORE_EINVAL, "family n_threads=0");
    CHECK(adamcore_family_step_f32(&t, 1, &ok, -1) == ADAMCORE_EINVAL, "family n_threads=-1");
    CHECK(adamcore_family_step_f32(NULL, 1, &ok, 1) == ADAMCORE_EINVAL, "family NULL table");
    CHECK(adamcore_family_step_f32(&t, 1, NULL, 1) == ADAMCORE_EINVAL, "family NULL hyper");
    CHECK(adamcore_family_step_f64(&t, -1, &ok, 1) == ADAMCORE_EINVAL, "family n_tensors=-1");
    adamcore_tensor bad = t;
    bad.n = -1;
    CHECK(adamcore_family_step_f32(&bad, 1, &ok, 1) == ADAMCORE_EINVAL, "family n=-1");
    bad = t;
    bad.param = NULL;
    CHECK(adamcore_family_step_f32(&bad, 1, &ok, 1) == ADAMCORE_EINVAL, "family NULL param");
    bad = t;
    bad.grad = NULL;
    CHECK(adamcore_family_step_f32(&bad, 1, &ok, 1) == ADAMCORE_EINVAL, "family NULL grad");
    /* A refused table is refused whole: a good first tensor is not stepped either. */
    adamcore_tensor two[2] = {t, t};
    two[1].state[0] = NULL;
    CHECK(adamcore_family_step_f32(two, 2, &ok, 1) == ADAMCORE_EINVAL, "family second bad");
    for (int i = 0; i < 4; i++)
        CHECK(x[i] == 0.0f && s[0][i] == 0.0f && s[1][i] == 0.0f && s[2][i] == 0.0f,
              "a refused family call wrote element %d", i);
    /* Empty work is fine: no table, or tensors of 0 elements (their slots unread). */
    CHECK(adamcore_family_step_f64(NULL, 0, &ok, 1) == ADAMCORE_OK, "family empty table");
    adamcore_tensor empty = {NULL, NULL, {NULL, NULL, NULL}, 0, {NULL, NULL, NULL}, 0};
    CHECK(adamcore_family_step_f32(&empty, 1, &ok, 1) == ADAMCORE_OK, "family 0 elements");
    /* And a valid call does write. */
    CHECK(adamcore_family_step_f32(&t, 1, &ok, 1) == ADAMCORE_OK, "family valid");
    CHECK(x[0] != 0.0f && s[0][0] == 1.0f, "a valid family call did not step");
}

static int test_family(int top)
{
    adamcore_family_hyper variants[128];
    const int nv = family_variants(variants);
    int cases = 0;
    for (int v = 0; v < nv; v++)
        for (int is_f64 = 0; is_f64 < 2; is_f64++)
            for (int level = 0; level <= top; level++) {
                for (int64_t n = 0; n < 68; n++, cases++)
                    run_family_case(is_f64, n, (int)((n + v) % 5), &variants[v], level,
                                    1 + (int)(n % 3), 3);
                for (int threads = 1; threads <= 3; threads++, cases++)
                    run_family_case(is_f64, 3 * ADAMCORE_PARALLEL_MIN + 37, (v + threads) % 5,
                                    &variants[v], level, threads, 2);
            }
    return cases;
}

/* ---- row gradients (rows.c) ------------------------------------------------ */

/* Coalescing sorts stably and refuses indices outside the table; the DENSE
 * row step equals the dense step on the materialised gradient bit for bit,
 * and the named-rows steps leave every other row untouched. */
static void test_rows(int top)
{
    enum { N = 600, W = 37, K = 900 };
    static int64_t idx[K], work[K], order[K], start[K + 1], uniq[K];
    static float rows[K * W], dense_g[N * W], p0[N * W];
    static float p[2][N * W], m[2][N * W], v[2][N * W];
    int64_t n_unique = 0;
    for (int i = 0; i < K; i++) idx[i] = (int64_t)((rnd() + 1.0) * 0.5 * (N / 3));
    for (int i = 0; i < K * W; i++) rows[i] = (float)rnd();
    for (int i = 0; i < N * W; i++) p0[i] = (float)rnd();
    idx[7] = N;
    CHECK(adamcore_rows_coalesce(idx, 8, K, N, work, order, start, uniq, &n_unique) ==
              ADAMCORE_EINVAL, "index N accepted");
    idx[7] = 0;
    CHECK(adamcore_rows_coalesce(idx, 8, K, N, work, order, start, uniq, &n_unique) ==
              ADAMCORE_OK, "coalesce");
    for (int64_t i = 1; i < K; i++) {
        const int64_t a = idx[order[i - 1]], b = idx[order[i]];
        CHECK(a < b || (a == b && order[i - 1] < order[i]), "not a stable order at %lld",
              (long long)i);
    }
    CHECK(start[0] == 0 && start[n_unique] == K, "segments");
    for (int64_t u = 0; u < n_unique; u++)
        CHECK(idx[order[start[u]]] == uniq[u] && (u == 0 || uniq[u - 1] < uniq[u]), "unique");
    memset(dense_g, 0, sizeof(dense_g));  /* the gradient the rows stand for */
    for (int64_t u = 0; u < n_unique; u++)
        for (int64_t s = start[u]; s < start[u + 1]; s++)
            for (int j = 0; j < W; j++) {
                float *d = &dense_g[uniq[u] * W + j];
                *d = s == start[u] ? rows[order[s] * W + j] : *d + rows[order[s] * W + j];
            }
    const adamcore_row_grad g = {rows, order, start, uniq, n_unique, W};
    adamcore_adam_hyper h = {1e-2, 0.9, 0.999, 1e-8, 0.1, 1.0, 3, 1, 0, 0, ADAMCORE_EPS_TORCH, ADAMCORE_STATE_NATIVE};
    for (int level = 0; level <= top; level++) {
        CHECK(adamcore_simd_set(level) == ADAMCORE_OK, "set level %d", level);
        for (int threads = 1; threads <= 3; threads++) {
            for (int a = 0; a < 2; a++) {
                memcpy(p[a], p0, sizeof(p0));
                memset(m[a], 0, sizeof(m[a]));
                memset(v[a], 0, sizeof(v[a]));
            }
            adamcore_tensor t = {p[0], dense_g, {m[0], v[0], NULL}, N * W, {NULL, NULL, NULL}, 0};
            adamcore_table tab = {p[1], {m[1], v[1], NULL}, N};
            CHECK(adamcore_adam_step_f32(&t, 1, &h, threads) == ADAMCORE_OK, "dense step");
            CHECK(adamcore_adam_rows_f32(&tab, &g, &h, ADAMCORE_ROWS_DENSE, threads) ==
                      ADAMCORE_OK, "DENSE row step");
            CHECK(memcmp(p[0], p[1], sizeof(p0)) == 0 && memcmp(v[0], v[1], sizeof(p0)) == 0,
                  "DENSE row step != dense step (level %d, %d threads)", level, threads);
            memcpy(p[1], p0, sizeof(p0));
            CHECK(adamcore_adam_rows_f32(&tab, &g, &h, ADAMCORE_ROWS_LAZY, threads) ==
                      ADAMCORE_OK, "LAZY row step");
            CHECK(memcmp(p[1] + (N / 3) * W, p0 + (N / 3) * W, (N - N / 3) * W * 4) == 0,
                  "LAZY wrote a row not named");
            CHECK(adamcore_adam_rows_f32(&tab, &g, &h, ADAMCORE_ROWS_SPARSE_ADAM, threads) ==
                      ADAMCORE_EINVAL, "SparseAdam with weight decay accepted");
        }
    }
    adamcore_simd_set(top);
}

/* rank_sum.c: the rank-ordered sum, against the plain loop, for thread
 * counts across the serial threshold, and its refusals. */
static void test_rank_sum(void)
{
    const int64_t ranks = 3, stride = 3 * ADAMCORE_PARALLEL_MIN + 41, n = stride - 7;
    float *recv = malloc(ranks * stride * sizeof(float)), *out = malloc(stride * sizeof(float));
    double *recv64 = malloc(ranks * stride * sizeof(double)), *out64 = malloc(stride * sizeof(double));
    for (int64_t i = 0; i < ranks * stride; i++) {
        recv[i] = (float)(rnd() * 100.0);
        recv64[i] = rnd() * 1e3;
    }
    for (int threads = 1; threads <= 3; threads++) {
        CHECK(adamcore_rank_sum_f32(recv, ranks, stride, n, 1.0f / 3.0f, out, threads) ==
                  ADAMCORE_OK, "rank_sum f32");
        CHECK(adamcore_rank_sum_f64(recv64, ranks, stride, n, 0.25, out64, threads) ==
                  ADAMCORE_OK, "rank_sum f64");
        for (int64_t i = 0; i < n; i++) {
            volatile float s = recv[i];
            for (int64_t r = 1; r < ranks; r++) s = s + recv[r * stride + i];
            s = s * (1.0f / 3.0f);
            volatile double s64 = recv64[i];
            for (int64_t r = 1; r < ranks; r++) s64 = s64 + recv64[r * stride + i];
            s64 = s64 * 0.25;
            CHECK(memcmp((const void *)&s, &out[i], sizeof s) == 0, "f32 sum at %lld",
                  (long long)i);
            CHECK(memcmp((const void *)&s64, &out64[i], sizeof s64) == 0, "f64 sum at %lld",
                  (long long)i);
        }
    }
    CHECK(adamcore_rank_sum_f32(recv, 0, stride, n, 1.0f, out, 1) == ADAMCORE_EINVAL, "0 ranks");
    CHECK(adamcore_rank_sum_f32(recv, ranks, n - 1, n, 1.0f, out, 1) == ADAMCORE_EINVAL,
          "stride < n");
    CHECK(adamcore_rank_sum_f32(NULL, ranks, stride, n, 1.0f, out, 1) == ADAMCORE_EINVAL, "NULL");
    CHECK(adamcore_rank_sum_f64(recv64, ranks, stride, n, 1.0, out64, 0) == ADAMCORE_EINVAL,
          "0 threads");
    free(recv);
    free(out);
    free(recv64);
    free(out64);
}

/* The 8-bit encoder equals an independent nearest-code search (a binary
 * search of the midpoints, compared in double) over every float32 in
 * [-1, 1] at a stride, and at every threshold and its neighbours. */
static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint8_t nearest_code(const uint32_t *map_bits, float q)
{
    int lo = 0, hi = 255;  /* the number of midpoints <= q: ties go up */
    while (lo < hi) {
        const int mid = (lo + hi) / 2;
        const double m = ((double)bits_f32(map_bits[mid]) + bits_f32(map_bits[mid + 1])) / 2;
        if (m <= (double)q) lo = mid + 1; else hi = mid;
    }
    return (uint8_t)lo;
}

static void test_qencode(void)
{
    for (int u = 0; u < 2; u++) {
        const uint32_t *map = adamcore_qmap_bits(u);
        int bad = 0;
        for (uint32_t b = 0; b <= 0x3f800000u; b += 61) {
            for (int sign = 0; sign < 2; sign++) {
                const float q = bits_f32(b | (sign ? 0x80000000u : 0));
                bad += adamcore_qencode(u, q) != nearest_code(map, q);
            }
        }
        for (int k = 0; k < 255; k++) {
            const double m = ((double)bits_f32(map[k]) + bits_f32(map[k + 1])) / 2;
            const float t = (float)m;
            const float near[4] = {t, nextafterf(t, -2.0f), nextafterf(t, 2.0f), bits_f32(map[k])};
            for (int j = 0; j < 4; j++) bad += adamcore_qencode(u, near[j]) != nearest_code(map, near[j]);
        }
        if (bad) {
            printf("FAIL qencode(%s): %d codes differ from the nearest\n", u ? "unsigned" : "signed", bad);
            failures++;
        }
        const uint8_t zero = nearest_code(map, 0.0f);
        if (adamcore_qencode(u, NAN) != zero) {
            printf("FAIL qencode(NaN) is not the code of zero\n");
            failures++;
        }
    }
}

/* Low-precision Adam: every thread count and SIMD level gives the bytes of
 * the baseline single-threaded run (the mirror is checked in tests/). */
static void test_lowp(int top)
{
    enum { N = 5 * ADAMCORE_PARALLEL_MIN + 301 };
    static float p[2][N], g[N], absmax[2][3][(N + 255) / 256];
    static uint16_t bf[2][3][N];
    static uint8_t q8[2][3][N];
    for (int64_t i = 0; i < N; i++) g[i] = (float)sin(0.37 * (double)i) * 2.0f;
    for (int fmt = ADAMCORE_STATE_BF16; fmt <= ADAMCORE_STATE_INT8; fmt++)
        for (int level = 0; level <= top; level++)
            for (int threads = 1; threads <= 3; threads += 2) {
                const int r = !(level == 0 && threads == 1);  /* run 0: the reference */
                adamcore_simd_set(level);
                memset(bf[r], 0, sizeof bf[r]);
                memset(q8[r], 0, sizeof q8[r]);
                memset(absmax[r], 0, sizeof absmax[r]);
                for (int64_t i = 0; i < N; i++) p[r][i] = (float)cos(0.11 * (double)i);
                adamcore_tensor t = {p[r], g, {NULL, NULL, NULL}, N, {NULL, NULL, NULL}, 42};
                for (int k = 0; k < 3; k++) {
                    t.state[k] = fmt == ADAMCORE_STATE_BF16 ? (void *)bf[r][k] : (void *)q8[r][k];
                    t.absmax[k] = absmax[r][k];
                }
                adamcore_adam_hyper h = {1e-2, 0.9, 0.999, 1e-8, 0.1, 1.0, 1, 1, 1, 0,
                                         ADAMCORE_EPS_TORCH, fmt};
                int status = 0;
                for (h.step = 1; h.step <= 3; h.step++)
                    status |= adamcore_adam_step_f32(&t, 1, &h, threads);
                if (status != ADAMCORE_OK ||
                    (r && (memcmp(p[0], p[1], sizeof p[0]) || memcmp(bf[0], bf[1], sizeof bf[0]) ||
                           memcmp(q8[0], q8[1], sizeof q8[0]) ||
                           memcmp(absmax[0], absmax[1], sizeof absmax[0])))) {
                    printf("FAIL lowp format %d level %d threads %d\n", fmt, level, threads);
                    failures++;
                }
            }
    adamcore_simd_set(top);
}

int main(void)
{
    const int top = adamcore_simd_supported();
    printf("SIMD levels 0..%d (%s), OpenMP %s, max threads %d\n", top,
           adamcore_simd_name(top), adamcore_openmp_enabled() ? "on" : "off",
           adamcore_max_threads());
    test_invalid();
    int cases = 0;
    for (int variant = 0; variant < 24; variant++) {
        adamcore_adam_hyper h = {1e-2, 0.9, 0.999, 1e-8, 0.0, 1.0, 1, 0, 0, 0, ADAMCORE_EPS_TORCH, ADAMCORE_STATE_NATIVE};
        h.maximize = variant & 1;
        h.amsgrad = (variant >> 1) & 1;
        h.eps_mode = (variant >> 2) & 1;
        const int wd = variant >> 3; /* 0 none, 1 coupled, 2 decoupled */
        h.weight_decay = wd ? 0.1 : 0.0;
        h.decoupled = wd == 2;
        h.grad_scale = variant % 3 == 1 ? 0.37 : 1.0;
        for (int is_f64 = 0; is_f64 < 2; is_f64++)
            for (int level = 0; level <= top; level++) {
                for (int64_t n = 0; n < 68; n++, cases++)
                    run_case(is_f64, n, (int)(n % 5), &h, level, 1, 3);
                for (int threads = 1; threads <= 3; threads++, cases++)
                    run_case(is_f64, 3 * ADAMCORE_PARALLEL_MIN + 37, variant % 3, &h, level,
                             threads, 2);
            }
    }
    test_rows(top);
    test_rank_sum();
    test_qencode();
    test_lowp(top);
    test_family_invalid();
    const int family_cases = test_family(top);
    printf("%d Adam cases, %d family cases, %d failures\n", cases, family_cases, failures);
    return failures != 0;
}
