/* C-only test of the Adam kernel: no Python, runs under sanitizers and valgrind.
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
        t[j].exp_avg = kp[2] + at;
        t[j].exp_avg_sq = kp[3] + at;
        t[j].max_exp_avg_sq = base->amsgrad ? kp[4] + at : NULL;
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
    adamcore_tensor t = {&x, &x, &x, &x, NULL, 1};
    const adamcore_adam_hyper ok = {1e-3, 0.9, 0.999, 1e-8, 0.0, 1.0, 1, 0, 0, 0, ADAMCORE_EPS_TORCH};
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

int main(void)
{
    const int top = adamcore_simd_supported();
    printf("SIMD levels 0..%d (%s), OpenMP %s, max threads %d\n", top,
           adamcore_simd_name(top), adamcore_openmp_enabled() ? "on" : "off",
           adamcore_max_threads());
    test_invalid();
    int cases = 0;
    for (int variant = 0; variant < 24; variant++) {
        adamcore_adam_hyper h = {1e-2, 0.9, 0.999, 1e-8, 0.0, 1.0, 1, 0, 0, 0, ADAMCORE_EPS_TORCH};
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
    printf("%d cases, %d failures\n", cases, failures);
    return failures != 0;
}
