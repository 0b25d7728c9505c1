/* Row gradients (adamcore.h: adamcore_row_grad): the coalescing sort, the
 * fused row steps of an Adam table, and the coalesced gradient's norm.
 *
 * Design:
 * - Coalescing is a stable LSD radix sort of the indices (11-bit digits,
 *   as many passes as n_rows needs: two for a million rows), then one walk
 *   that finds the distinct indices. Its result is unique, so the NumPy
 *   mirror (a stable argsort) finds the same order, and the rows of a
 *   duplicated index are summed in input order: (r0 + r1) + r2 ...
 * - A step is one pass over the rows it updates, through the dense step's own
 *   loops (adam_body.h, resolved to the variant once per call: adam_simd.c;
 *   sparse_adam_body.h for SparseAdam), each row's lines asked for 8 rows
 *   ahead: a row named once is stepped straight from its gradient row; a
 *   duplicated row is summed into a stack buffer of ROWS_BUF elements (in
 *   L1) piece by piece, each piece stepped as it is summed. ADAMCORE_ROWS_DENSE
 *   walks the whole
 *   table PIECE elements at a time, the gradient of each piece zeros with the
 *   named rows written in, so it equals the dense step on the materialised
 *   gradient bit for bit and reads no dense grad from memory.
 *   No allocation, no atomics: threads take equal ranges of the elements
 *   stepped (adamcore_split), each element stepped once by one thread, and
 *   elementwise arithmetic makes the bits independent of the split.
 * - The norm follows csrc/grad_norm.c over the virtual n_unique x width
 *   array of summed rows: blocks of ADAMCORE_NORM_BLOCK elements, 16 lanes
 *   per block, block sums in a caller-given workspace added in block order.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "adam_internal.h"

/* ---- coalescing ----------------------------------------------------------- */

#define RADIX_BITS 11
#define RADIX (1 << RADIX_BITS)

static inline int64_t index_at(const void *indices, int index_bytes, int64_t i)
{
    return index_bytes == 4 ? (int64_t)((const int32_t *)indices)[i]
                            : ((const int64_t *)indices)[i];
}

int adamcore_rows_coalesce(const void *indices, int index_bytes, int64_t k, int64_t n_rows,
                           int64_t *work, int64_t *order, int64_t *start, int64_t *unique,
                           int64_t *n_unique)
{
    if (k < 0 || n_rows < 0 || (index_bytes != 4 && index_bytes != 8) || !start || !n_unique ||
        (k > 0 && (!indices || !work || !order || !unique)))
        return ADAMCORE_EINVAL;
    int sorted = 1;
    int64_t prev = 0;
    for (int64_t i = 0; i < k; i++) {
        const int64_t key = index_at(indices, index_bytes, i);
        if (key < 0 || key >= n_rows) return ADAMCORE_EINVAL;
        if (key < prev) sorted = 0;
        prev = key;
    }
    for (int64_t i = 0; i < k; i++) order[i] = i;
    if (!sorted) {  /* already ascending (a coalesced gradient): the identity */
        int bits = 0;
        while (bits < 63 && ((n_rows - 1) >> bits) > 0) bits++;
        int64_t count[RADIX + 1];
        int64_t *from = order, *to = work;
        for (int shift = 0; shift < bits; shift += RADIX_BITS) {
            memset(count, 0, sizeof(count));
            for (int64_t i = 0; i < k; i++)
                count[((index_at(indices, index_bytes, from[i]) >> shift) & (RADIX - 1)) + 1]++;
            for (int d = 0; d < RADIX; d++) count[d + 1] += count[d];
            for (int64_t i = 0; i < k; i++) {  /* in order of from: stable */
                const int64_t d = (index_at(indices, index_bytes, from[i]) >> shift) & (RADIX - 1);
                to[count[d]++] = from[i];
            }
            int64_t *t = from;
            from = to;
            to = t;
        }
        if (from != order) memcpy(order, from, (size_t)k * sizeof(int64_t));
    }
    int64_t u = 0;
    for (int64_t i = 0; i < k; i++) {
        const int64_t key = index_at(indices, index_bytes, order[i]);
        if (u == 0 || key != unique[u - 1]) {
            unique[u] = key;
            start[u] = i;
            u++;
        }
    }
    start[u] = k;
    *n_unique = u;
    return ADAMCORE_OK;
}

/* ---- a duplicated row's gradient --------------------------------------------- */

/* Elements [a, a+n) of distinct row u's summed gradient into out, in input order. */
#define DEFINE_SUM(T, SUF)                                                            \
    static void sum_row_##SUF(T *out, const adamcore_row_grad *g, int64_t u, int64_t a, \
                              int64_t n)                                              \
    {                                                                                 \
        const T *rows = (const T *)g->rows;                                           \
        const int64_t w = g->width;                                                   \
        const T *r0 = rows + g->order[g->start[u]] * w + a;                           \
        for (int64_t i = 0; i < n; i++) out[i] = r0[i];                               \
        for (int64_t s = g->start[u] + 1; s < g->start[u + 1]; s++) {                 \
            const T *r = rows + g->order[s] * w + a;                                  \
            for (int64_t i = 0; i < n; i++) out[i] = out[i] + r[i]; /* g = g + r */   \
        }                                                                             \
    }
DEFINE_SUM(float, f32)
DEFINE_SUM(double, f64)

static void sum_row(void *out, const adamcore_row_grad *g, int64_t u, int64_t a, int64_t n,
                    int is_f64)
{
    if (is_f64) sum_row_f64((double *)out, g, u, a, n);
    else sum_row_f32((float *)out, g, u, a, n);
}

/* ---- the row steps ------------------------------------------------------------- */

#define ROWS_BUF 512   /* elements of a duplicated row summed at a time, on the stack */
#define PIECE 2048     /* elements per kernel call in ADAMCORE_ROWS_DENSE */
static const double zeros[PIECE];

typedef struct {
    const adamcore_table *t;
    const adamcore_row_grad *g;
    adamcore_chunk_fn fn;
    const void *scalars;
    int variant;
    int is_f64;
} rows_job;

/* One kernel call over table elements [lo, lo + n) with gradient src. */
static void call(const rows_job *j, int64_t lo, int64_t n, const void *src)
{
    const int64_t d = lo * (j->is_f64 ? 8 : 4);
    j->fn((char *)j->t->param + d, src, (char *)j->t->state[0] + d, (char *)j->t->state[1] + d,
          j->t->state[2] ? (char *)j->t->state[2] + d : NULL, n, j->scalars, j->variant);
}

/* Elements [a, a+n) of distinct row u's gradient into dst. */
static void gradient_of(void *dst, const rows_job *j, int64_t u, int64_t a, int64_t n)
{
    const int64_t es = j->is_f64 ? 8 : 4;
    const adamcore_row_grad *g = j->g;
    if (g->start[u + 1] - g->start[u] == 1)
        memcpy(dst, (const char *)g->rows + (g->order[g->start[u]] * g->width + a) * es,
               (size_t)(n * es));
    else
        sum_row(dst, g, u, a, n, j->is_f64);
}

/* Ask for the first PREFETCH_BYTES of distinct row u's table rows. */
#define PREFETCH_AHEAD 8
#define PREFETCH_BYTES 512
static void prefetch_row(const rows_job *j, int64_t u)
{
    const int64_t es = j->is_f64 ? 8 : 4, bytes = j->g->width * es;
    const int64_t off = j->g->unique[u] * bytes;
    for (int64_t b = 0; b < bytes && b < PREFETCH_BYTES; b += 64) {
        ADAMCORE_PREFETCH_W((char *)j->t->param + off + b);
        ADAMCORE_PREFETCH_W((char *)j->t->state[0] + off + b);
        ADAMCORE_PREFETCH_W((char *)j->t->state[1] + off + b);
        if (j->t->state[2]) ADAMCORE_PREFETCH_W((char *)j->t->state[2] + off + b);
    }
}

/* Elements [lo, hi) of the n_unique x width rows named (LAZY, SPARSE_ADAM):
 * a row named once is stepped straight from its gradient row, a duplicated
 * one from its sum, ROWS_BUF elements at a time. Named rows are scattered
 * over the table, so each is a cache miss the hardware prefetcher cannot
 * foresee, and a few rows' worth of instructions fill the core's window:
 * asking for the rows PREFETCH_AHEAD ahead overlaps more misses (1M x 64
 * float32, 4096 rows, 1 thread, kernel only, interleaved as in
 * tools/ab_rows.py: lazy 0.84 -> 0.69 ms, SparseAdam 1.11 -> 0.83 ms at 8
 * ahead; 4 to 16 measured alike, 32 worse). The hardware prefetcher streams the rest of a wide row. */
static void run_named(const void *ctx, int64_t lo, int64_t hi)
{
    const rows_job *j = (const rows_job *)ctx;
    const adamcore_row_grad *g = j->g;
    const int64_t w = g->width, es = j->is_f64 ? 8 : 4;
    double buf[ROWS_BUF];  /* 8-byte aligned for either dtype */
    for (int64_t u = lo / w; u < g->n_unique && u < lo / w + PREFETCH_AHEAD && u * w < hi; u++)
        prefetch_row(j, u);
    for (int64_t u = lo / w; u < g->n_unique && u * w < hi; u++) {
        const int64_t next = u + PREFETCH_AHEAD;
        if (next < g->n_unique && next * w < hi) prefetch_row(j, next);
        const int64_t base = g->unique[u] * w;
        const int64_t a = lo > u * w ? lo - u * w : 0, b = hi < (u + 1) * w ? hi - u * w : w;
        if (g->start[u + 1] - g->start[u] == 1) {
            call(j, base + a, b - a, (const char *)g->rows + (g->order[g->start[u]] * w + a) * es);
            continue;
        }
        for (int64_t e = a; e < b; e += ROWS_BUF) {
            const int64_t n = b - e < ROWS_BUF ? b - e : ROWS_BUF;
            sum_row(buf, g, u, e, n, j->is_f64);
            call(j, base + e, n, buf);
        }
    }
}

/* Elements [lo, hi) of the whole n_rows x width table (DENSE), PIECE at a
 * time: a piece no named row reaches steps with the static zeros, any other
 * with a stack buffer of zeros and the named rows' gradients, so a table
 * with rows named here and there costs one call per PIECE elements, not
 * two per named row. */
static void run_dense(const void *ctx, int64_t lo, int64_t hi)
{
    const rows_job *j = (const rows_job *)ctx;
    const int64_t w = j->g->width, n_unique = j->g->n_unique, es = j->is_f64 ? 8 : 4;
    const int64_t *unique = j->g->unique;
    int64_t u = 0, last = n_unique;  /* the first distinct row at or after lo's row */
    while (u < last) {
        const int64_t mid = u + (last - u) / 2;
        if (unique[mid] < lo / w) u = mid + 1;
        else last = mid;
    }
    double buf[PIECE];  /* 16 KB, 8-byte aligned for either dtype */
    for (int64_t e = lo; e < hi; e += PIECE) {
        const int64_t end = hi - e < PIECE ? hi : e + PIECE;
        const void *src = zeros;
        for (; u < n_unique && unique[u] * w < end; u++) {
            const int64_t r0 = unique[u] * w;
            const int64_t a = r0 > e ? r0 : e, b = r0 + w < end ? r0 + w : end;
            if (src == zeros) {
                memset(buf, 0, (size_t)((end - e) * es));
                src = buf;
            }
            gradient_of((char *)buf + (a - e) * es, j, u, a - r0, b - a);
            if (r0 + w > end) break;  /* the row goes on into the next piece */
        }
        call(j, e, end - e, src);
    }
}

static int grad_valid(const adamcore_row_grad *g, int64_t n_rows)
{
    if (!g || g->n_unique < 0 || g->width < 0 || !g->start) return 0;
    if (g->n_unique > 0 && (!g->rows || !g->order || !g->unique)) return 0;
    for (int64_t u = 0; u < g->n_unique; u++)  /* O(n_unique): cheap against the step */
        if (g->unique[u] < 0 || g->unique[u] >= n_rows || (u > 0 && g->unique[u] <= g->unique[u - 1]) ||
            g->start[u + 1] <= g->start[u])
            return 0;
    return 1;
}

static int adam_rows(const adamcore_table *t, const adamcore_row_grad *g,
                     const adamcore_adam_hyper *h, int mode, int n_threads, int is_f64)
{
    if (!t || t->n_rows < 0 || !adamcore_adam_hyper_valid(h) ||
        h->state_format != ADAMCORE_STATE_NATIVE || n_threads < 1 ||
        !grad_valid(g, t->n_rows) ||
        (mode != ADAMCORE_ROWS_LAZY && mode != ADAMCORE_ROWS_DENSE &&
         mode != ADAMCORE_ROWS_SPARSE_ADAM) ||
        (mode == ADAMCORE_ROWS_SPARSE_ADAM && (h->weight_decay != 0.0 || h->amsgrad)))
        return ADAMCORE_EINVAL;
    const int64_t named = g->n_unique * g->width, all = t->n_rows * g->width;
    const int64_t total = mode == ADAMCORE_ROWS_DENSE ? all : named;
    if (total == 0) return ADAMCORE_OK;
    if (!t->param || !t->state[0] || !t->state[1] || (h->amsgrad && !t->state[2]))
        return ADAMCORE_EINVAL;
    adamcore_adam_hyper hk = *h;
    if (mode == ADAMCORE_ROWS_SPARSE_ADAM) hk.eps_mode = ADAMCORE_EPS_KERAS;  /* torch's eps */
    adamcore_adam_prepared prep;
    adamcore_adam_prepare(&hk, is_f64, &prep);
    rows_job job = {t, g, prep.fn, prep.scalars, prep.variant, is_f64};
    if (mode == ADAMCORE_ROWS_LAZY)  /* short calls: no peel (see adam_simd.c) */
        job.fn = adamcore_row_loop_for(adamcore_simd_get(), is_f64, prep.variant);
    if (mode == ADAMCORE_ROWS_SPARSE_ADAM) {
        job.fn = adamcore_sparse_loop_for(adamcore_simd_get(), is_f64, h->maximize);
    }
    adamcore_split(total, n_threads, mode == ADAMCORE_ROWS_DENSE ? run_dense : run_named, &job);
    return ADAMCORE_OK;
}

int adamcore_adam_rows_f32(const adamcore_table *table, const adamcore_row_grad *grad,
                           const adamcore_adam_hyper *hyper, int mode, int n_threads)
{
    return adam_rows(table, grad, hyper, mode, n_threads, 0);
}

int adamcore_adam_rows_f64(const adamcore_table *table, const adamcore_row_grad *grad,
                           const adamcore_adam_hyper *hyper, int mode, int n_threads)
{
    return adam_rows(table, grad, hyper, mode, n_threads, 1);
}

/* ---- the coalesced gradient's norm ----------------------------------------- */

#define LANES ADAMCORE_NORM_LANES

int64_t adamcore_rows_norm_blocks(const adamcore_row_grad *g)
{
    return (g->n_unique * g->width + ADAMCORE_NORM_BLOCK - 1) / ADAMCORE_NORM_BLOCK;
}

/* Block b's sum of squares, with grad_norm.c's lanes (element e in lane e % 16). */
#define DEFINE_ROWS_BLOCK(T, SUF)                                                     \
    static double rows_block_##SUF(const adamcore_row_grad *g, int64_t b)           \
    {                                                                                 \
        double acc[LANES] = {0};                                                      \
        T buf[ROWS_BUF];                                                              \
        const int64_t w = g->width, total = g->n_unique * w;                          \
        const int64_t lo = b * ADAMCORE_NORM_BLOCK;                                   \
        const int64_t hi = lo + ADAMCORE_NORM_BLOCK < total ? lo + ADAMCORE_NORM_BLOCK : total; \
        for (int64_t e = lo; e < hi;) {                                               \
            const int64_t u = e / w, a = e - u * w;                                   \
            int64_t n = (u + 1) * w < hi ? (u + 1) * w - e : hi - e;                  \
            const T *x;                                                               \
            if (g->start[u + 1] - g->start[u] == 1) {                                 \
                x = (const T *)g->rows + g->order[g->start[u]] * w + a;               \
            } else {                                                                  \
                if (n > ROWS_BUF) n = ROWS_BUF;                                       \
                sum_row_##SUF(buf, g, u, a, n);                                       \
                x = buf;                                                              \
            }                                                                         \
            for (int64_t i = 0; i < n; i++) {                                         \
                const double v = (double)x[i];                                        \
                acc[(e + i) % LANES] += v * v;                                        \
            }                                                                         \
            e += n;                                                                   \
        }                                                                             \
        return adamcore_fold_lanes(acc);                                             \
    }
DEFINE_ROWS_BLOCK(float, f32)
DEFINE_ROWS_BLOCK(double, f64)

/* Whether any element of the coalesced gradient is NaN or infinite. */
#define DEFINE_ROWS_NONFINITE(T, SUF)                                                 \
    static int rows_nonfinite_##SUF(const adamcore_row_grad *g)                      \
    {                                                                                 \
        T buf[ROWS_BUF];                                                              \
        for (int64_t u = 0; u < g->n_unique; u++)                                     \
            for (int64_t a = 0; a < g->width; a += ROWS_BUF) {                        \
                const int64_t n = g->width - a < ROWS_BUF ? g->width - a : ROWS_BUF;  \
                sum_row_##SUF(buf, g, u, a, n);                                       \
                for (int64_t i = 0; i < n; i++)                                       \
                    if (!isfinite(buf[i])) return 1;                                  \
            }                                                                         \
        return 0;                                                                     \
    }
DEFINE_ROWS_NONFINITE(double, f64)

typedef struct {
    const adamcore_row_grad *g;
    double *work;
    int is_f64;
} rows_blocks_ctx;

static void run_rows_blocks(const void *vctx, int64_t lo, int64_t hi)
{
    const rows_blocks_ctx *c = (const rows_blocks_ctx *)vctx;
    for (int64_t b = lo; b < hi; b++)
        c->work[b] = c->is_f64 ? rows_block_f64(c->g, b) : rows_block_f32(c->g, b);
}

static int rows_sumsq(const adamcore_row_grad *g, double *work, int n_threads,
                      double *out_sumsq, int *out_nonfinite, int is_f64)
{
    if (n_threads < 1 || !out_sumsq || !out_nonfinite || !g || g->n_unique < 0 ||
        g->width < 0 || !g->start || (g->n_unique > 0 && (!g->rows || !g->order)))
        return ADAMCORE_EINVAL;
    const int64_t n_blocks = g->width ? adamcore_rows_norm_blocks(g) : 0;
    if (n_blocks > 0 && !work) return ADAMCORE_EINVAL;
    const rows_blocks_ctx ctx = {g, work, is_f64};
    adamcore_split_runs(n_blocks, g->n_unique * g->width < ADAMCORE_PARALLEL_MIN, n_threads, 1,
                        run_rows_blocks, &ctx);
    double s = 0.0;
    for (int64_t b = 0; b < n_blocks; b++) s += work[b];  /* block order, for any split */
    int nonfinite = !isfinite(s);
    if (nonfinite && is_f64) nonfinite = rows_nonfinite_f64(g);  /* finite squares may overflow */
    *out_sumsq = s;
    *out_nonfinite = nonfinite;
    return ADAMCORE_OK;
}

int adamcore_rows_sumsq_f32(const adamcore_row_grad *grad, double *work, int n_threads,
                            double *out_sumsq, int *out_nonfinite)
{
    return rows_sumsq(grad, work, n_threads, out_sumsq, out_nonfinite, 0);
}

int adamcore_rows_sumsq_f64(const adamcore_row_grad *grad, double *work, int n_threads,
                            double *out_sumsq, int *out_nonfinite)
{
    return rows_sumsq(grad, work, n_threads, out_sumsq, out_nonfinite, 1);
}
