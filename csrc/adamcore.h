/* adamcore C API: a fused, multi-threaded Adam step over contiguous buffers.
 *
 * Plain C, no Python.h: the kernels are stateless and can be built, tested and
 * sanitized without Python (see test_kernel.c and the Makefile beside this file).
 */
#ifndef ADAMCORE_H
#define ADAMCORE_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes returned by every entry point. */
enum {
    ADAMCORE_OK = 0,
    ADAMCORE_EINVAL = -1,      /* a hyperparameter, count or pointer is invalid */
    ADAMCORE_EUNSUPPORTED = -2 /* SIMD level not built or not supported by this CPU */
};

/* Where the epsilon goes (see adam_body.h for the formulas). */
enum {
    ADAMCORE_EPS_TORCH = 0, /* p -= (lr/bc1) * m / (sqrt(v)/sqrt(bc2) + eps) */
    ADAMCORE_EPS_KERAS = 1  /* p -= (lr*sqrt(bc2)/bc1) * m / (sqrt(v) + eps) */
};

/* SIMD levels, lowest first. */
enum {
    ADAMCORE_SIMD_BASELINE = 0,
    ADAMCORE_SIMD_AVX2 = 1,
    ADAMCORE_SIMD_AVX512 = 2,
    ADAMCORE_SIMD_COUNT = 3
};

/* One parameter tensor and its state buffers, all of the param's dtype and
 * length n. Buffers must not overlap each other or any buffer of another
 * tensor in the same call. Every kind takes this one row type; which state
 * slot holds what, and when it is required (NULL otherwise):
 *   Adam       state[0] exp_avg (m); state[1] exp_avg_sq (v);
 *              state[2] max_exp_avg_sq         if amsgrad
 *   SGD        state[0] momentum_buffer        if momentum != 0
 *   RMSprop    state[0] square_avg; state[1] momentum_buffer if momentum != 0;
 *              state[2] grad_avg               if centered
 *   Adagrad    state[0] sum
 *   AdaBelief  state[0] exp_avg; state[1] exp_avg_var;
 *              state[2] max_exp_avg_var        if amsgrad */
typedef struct {
    void *param;           /* IN/OUT */
    const void *grad;      /* IN     */
    void *state[3];        /* IN/OUT */
    int64_t n;             /* number of elements, >= 0 */
    /* Adam's low-precision state only (adamcore_adam_hyper.state_format;
     * zero otherwise): */
    float *absmax[3];      /* IN/OUT, 8-bit: state[k]'s scale per block of
                              ADAMCORE_QBLOCK elements, ceil(n / 256) floats */
    uint64_t seed;         /* bfloat16: the tensor's stream of rounding bits */
} adamcore_tensor;

/* Where Adam keeps m, v (and AMSGrad's max), for any param dtype:
 *   NATIVE  the param's dtype (state[k] as param)
 *   BF16    bfloat16 (uint16 bit patterns), the arithmetic in the param's
 *           dtype, stored by stochastic rounding with bits from a hash of
 *           (seed, step, element index): lowp_body.h
 *   INT8    one byte per element, a code of the dynamic maps (qmaps.c), and
 *           one float32 absmax per ADAMCORE_QBLOCK consecutive elements */
enum { ADAMCORE_STATE_NATIVE = 0, ADAMCORE_STATE_BF16 = 1, ADAMCORE_STATE_INT8 = 2 };
#define ADAMCORE_QBLOCK 256

typedef struct {
    double lr;             /* >= 0 */
    double beta1, beta2;   /* in [0, 1) */
    double eps;            /* >= 0 */
    double weight_decay;   /* >= 0 */
    double grad_scale;     /* >= 0 or NaN: every grad element is first multiplied by it
                              (1 = none; global-norm clipping fused into the step) */
    int64_t step;          /* >= 1: the step being taken, after incrementing */
    int decoupled;         /* 0: L2 added to the gradient; 1: AdamW decay of p */
    int amsgrad;
    int maximize;
    int eps_mode;          /* ADAMCORE_EPS_TORCH or ADAMCORE_EPS_KERAS */
    int state_format;      /* ADAMCORE_STATE_*; the dense step only (not rows) */
} adamcore_adam_hyper;

/* Step every tensor of the table once. n_threads >= 1 is the most threads
 * used; the work is split over the concatenated elements of all tensors (with
 * low-precision state: over their blocks of ADAMCORE_QBLOCK), and runs
 * serially below ADAMCORE_PARALLEL_MIN elements. The result does not depend
 * on n_threads or on the SIMD level. */
int adamcore_adam_step_f32(const adamcore_tensor *tensors, int64_t n_tensors,
                           const adamcore_adam_hyper *hyper, int n_threads);
int adamcore_adam_step_f64(const adamcore_tensor *tensors, int64_t n_tensors,
                           const adamcore_adam_hyper *hyper, int n_threads);

/* ---- the optimizer family (family_step.c) ---------------------------------
 * SGD (momentum, Nesterov), RMSprop (momentum, centered), Adagrad and
 * AdaBelief: the same table-of-tensors call, threads, SIMD dispatch and
 * determinism as Adam. Formulas: family_body.h. */
enum {
    ADAMCORE_SGD = 0,
    ADAMCORE_RMSPROP = 1,
    ADAMCORE_ADAGRAD = 2,
    ADAMCORE_ADABELIEF = 3,
    ADAMCORE_ADAM = 4,     /* not a family kind: adamcore_adam_step_*; named here so
                              that one number names every kind (adamcore/kinds.py) */
    ADAMCORE_SPARSE_ADAM = 5 /* row gradients only: adamcore_adam_rows_* with
                                ADAMCORE_ROWS_SPARSE_ADAM */
};

/* Hyperparameters; each optimizer reads its own (PyTorch's names). All reals
 * finite and >= 0 unless stated. */
typedef struct {
    int kind;              /* ADAMCORE_SGD ... ADAMCORE_ADABELIEF */
    double lr;
    double weight_decay;   /* L2 added to the gradient, or decoupled (AdaBelief) */
    double grad_scale;     /* >= 0 or NaN, as for Adam */
    double eps;            /* RMSprop, Adagrad, AdaBelief */
    double momentum;       /* SGD, RMSprop */
    double dampening;      /* SGD: any finite value */
    double alpha;          /* RMSprop: smoothing constant */
    double lr_decay;       /* Adagrad */
    double beta1, beta2;   /* AdaBelief: in [0, 1) */
    int64_t step;          /* Adagrad, AdaBelief: >= 1, after incrementing */
    int maximize;
    int nesterov;          /* SGD: needs momentum > 0 and dampening == 0 */
    int first;             /* SGD: the momentum buffer is new: buf = g (PyTorch) */
    int centered;          /* RMSprop */
    int decoupled;         /* AdaBelief: p *= 1 - lr*weight_decay (weight_decouple) */
    int amsgrad;           /* AdaBelief */
    int rectify;           /* AdaBelief: RAdam's rectified step (adabelief-pytorch's
                              rectify, degenerated_to_sgd); see family_step.c */
} adamcore_family_hyper;

int adamcore_family_step_f32(const adamcore_tensor *tensors, int64_t n_tensors,
                             const adamcore_family_hyper *hyper, int n_threads);
int adamcore_family_step_f64(const adamcore_tensor *tensors, int64_t n_tensors,
                             const adamcore_family_hyper *hyper, int n_threads);

/* Fewer elements than this in one call run on the calling thread with no
 * OpenMP call at all (measured: see the note in adam_step.c). */
#ifndef ADAMCORE_PARALLEL_MIN
#define ADAMCORE_PARALLEL_MIN 16384
#endif

/* SIMD dispatch. The level in use starts as the best this CPU supports,
 * capped by the ADAMCORE_SIMD environment variable read on first use
 * ("baseline", "avx2", "avx512"). */
int adamcore_simd_supported(void);    /* highest level this build and CPU run */
int adamcore_simd_get(void);          /* level in use */
int adamcore_simd_set(int level);     /* ADAMCORE_OK or ADAMCORE_EUNSUPPORTED */
const char *adamcore_simd_name(int level);

/* Gradient norms (grad_norm.c): the sum of squares of every element of the
 * arrays, in double, and whether any element is NaN or infinite, in one pass.
 * Bitwise the same for any thread count and SIMD level. work must hold
 * adamcore_norm_blocks(arrays, n_arrays) doubles. */
typedef struct {
    const void *data;  /* IN */
    int64_t n;
} adamcore_array;

#define ADAMCORE_NORM_BLOCK 2048
int64_t adamcore_norm_blocks(const adamcore_array *arrays, int64_t n_arrays);
int adamcore_sumsq_f32(const adamcore_array *arrays, int64_t n_arrays, double *work,
                       int n_threads, double *out_sumsq, int *out_nonfinite);
int adamcore_sumsq_f64(const adamcore_array *arrays, int64_t n_arrays, double *work,
                       int n_threads, double *out_sumsq, int *out_nonfinite);

/* ---- row gradients (rows.c) -----------------------------------------------
 * The gradient of an n_rows x width table (an embedding) given as k rows and
 * their row indices, duplicates allowed. adamcore_rows_coalesce orders them:
 * the distinct indices ascending, and for each the positions of its rows in
 * input order; a duplicated row's gradient is the sum of its rows in that
 * order ((r0 + r1) + r2 ...). The steps below read the rows through that
 * order and never write them; they update only the table rows the row
 * gradient names (or, ADAMCORE_ROWS_DENSE, every row), split over threads by
 * element ranges, so results are the same for any thread count and SIMD
 * level. */
typedef struct {
    const void *rows;        /* IN: k x width, the table's dtype, C order */
    const int64_t *order;    /* IN: k positions into rows, in coalesced order */
    const int64_t *start;    /* IN: n_unique + 1 offsets into order */
    const int64_t *unique;   /* IN: n_unique distinct indices, ascending */
    int64_t n_unique;
    int64_t width;           /* >= 0 */
} adamcore_row_grad;

/* Order k indices (int32 if index_bytes is 4, else int64): writes order[k],
 * start[n_unique + 1], unique[n_unique] (at most k) and *n_unique; work holds
 * k int64. ADAMCORE_EINVAL, with nothing sorted, if an index is outside
 * [0, n_rows). A stable LSD radix sort: the order is unique (ties keep input
 * order), so every implementation finds the same one. */
int adamcore_rows_coalesce(const void *indices, int index_bytes, int64_t k, int64_t n_rows,
                           int64_t *work, int64_t *order, int64_t *start, int64_t *unique,
                           int64_t *n_unique);

/* How a row gradient steps an Adam table (adamcore/rows.py has the table):
 *   LAZY         the named rows only, with Adam's update (TF Addons LazyAdam)
 *   DENSE        every row, absent rows with a zero gradient: bitwise the dense
 *                step on the materialised gradient (Keras), never materialised
 *   SPARSE_ADAM  the named rows only, with torch.optim.SparseAdam's update
 *                (needs weight_decay 0 and no amsgrad; eps_mode is ignored) */
enum { ADAMCORE_ROWS_LAZY = 0, ADAMCORE_ROWS_DENSE = 1, ADAMCORE_ROWS_SPARSE_ADAM = 2 };

/* A table: param and state are n_rows x width, the dtype of the call, not
 * overlapping each other or the row gradient's buffers. state[0] exp_avg,
 * state[1] exp_avg_sq, state[2] max_exp_avg_sq if amsgrad (else NULL). */
typedef struct {
    void *param;             /* IN/OUT */
    void *state[3];          /* IN/OUT */
    int64_t n_rows;
} adamcore_table;

int adamcore_adam_rows_f32(const adamcore_table *table, const adamcore_row_grad *grad,
                           const adamcore_adam_hyper *hyper, int mode, int n_threads);
int adamcore_adam_rows_f64(const adamcore_table *table, const adamcore_row_grad *grad,
                           const adamcore_adam_hyper *hyper, int mode, int n_threads);

/* Sum of squares of the coalesced gradient and whether any of it is NaN or
 * infinite: bitwise adamcore_sumsq_* of the n_unique x width array of summed
 * rows, without making it. work holds adamcore_rows_norm_blocks(grad) doubles. */
int64_t adamcore_rows_norm_blocks(const adamcore_row_grad *grad);
int adamcore_rows_sumsq_f32(const adamcore_row_grad *grad, double *work, int n_threads,
                            double *out_sumsq, int *out_nonfinite);
int adamcore_rows_sumsq_f64(const adamcore_row_grad *grad, double *work, int n_threads,
                            double *out_sumsq, int *out_nonfinite);

/* The ordered sum of a reproducible reduce-scatter (rank_sum.c): out[i] =
 * (((recv[0*stride + i] + recv[1*stride + i]) + ...) + recv[(n_ranks-1)*stride
 * + i]) * scale for i < n, in rank order for any thread count and SIMD level.
 * out may not overlap recv. */
int adamcore_rank_sum_f32(const float *recv, int64_t n_ranks, int64_t stride, int64_t n,
                          float scale, float *out, int n_threads);
int adamcore_rank_sum_f64(const double *recv, int64_t n_ranks, int64_t stride, int64_t n,
                          double scale, double *out, int n_threads);

/* The 8-bit state's code maps (qmaps.c): 256 ascending float32 bit
 * patterns, signed (exp_avg) or unsigned (exp_avg_sq); and the code the
 * kernels give a scaled value q (the rounding rule in qmaps.c). */
const uint32_t *adamcore_qmap_bits(int is_unsigned);
uint8_t adamcore_qencode(int is_unsigned, float q);

/* Memory-bandwidth probe with the Adam step's access pattern (stream_probe.c):
 * p += g; m += g; v += g over n float32 elements, split like a step. */
int adamcore_stream_probe_f32(float *p, const float *g, float *m, float *v, int64_t n,
                              int n_threads);

/* OpenMP: whether the build has it, and omp_get_max_threads() (1 without). */
int adamcore_openmp_enabled(void);
int adamcore_max_threads(void);

#ifdef __cplusplus
}
#endif
#endif /* ADAMCORE_H */
