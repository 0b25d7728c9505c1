/* Measures where two threads start to beat one, to set ADAMCORE_PARALLEL_MIN.
 * Built with the threshold forced to 0 (`make threshold`), so every call with
 * n_threads=2 enters the parallel region; prints the median ns per call. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include "adamcore.h"

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median_ns(adamcore_tensor *t, int threads, int reps)
{
    double samples[31];
    adamcore_adam_hyper h = {1e-3, 0.9, 0.999, 1e-8, 0.0, 1.0, 1, 0, 0, 0, ADAMCORE_EPS_TORCH};
    for (int s = 0; s < 31; s++) {
        const double t0 = now_ns();
        for (int r = 0; r < reps; r++) adamcore_adam_step_f32(t, 1, &h, threads);
        samples[s] = (now_ns() - t0) / reps;
    }
    qsort(samples, 31, sizeof(double), cmp);
    return samples[15];
}

int main(void)
{
    printf("%10s %12s %12s %8s\n", "elements", "1 thread ns", "2 threads ns", "2t/1t");
    for (int64_t n = 1024; n <= (1 << 20); n *= 2) {
        float *a = aligned_alloc(64, (size_t)n * 16);
        for (int64_t i = 0; i < 4 * n; i++) a[i] = (float)(i % 7) * 0.1f;
        adamcore_tensor t = {a, a + n, {a + 2 * n, a + 3 * n, NULL}, n};
        const int reps = (int)(4000000 / n) + 1;
        median_ns(&t, 2, reps); /* warm the thread pool */
        const double one = median_ns(&t, 1, reps), two = median_ns(&t, 2, reps);
        printf("%10lld %12.0f %12.0f %8.2f\n", (long long)n, one, two, two / one);
        free(a);
    }
    return 0;
}
