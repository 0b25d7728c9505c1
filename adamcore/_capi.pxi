# The C API (csrc/adamcore.h), as the binding's modules see it.

cdef extern from "adamcore.h" nogil:
    enum:
        ADAMCORE_OK
        ADAMCORE_SIMD_COUNT
        ADAMCORE_PARALLEL_MIN
        ADAMCORE_ADAM

    ctypedef struct adamcore_tensor:
        void *param
        const void *grad
        void *state[3]
        int64_t n
        float *absmax[3]
        uint64_t seed

    ctypedef struct adamcore_adam_hyper:
        double lr, beta1, beta2, eps, weight_decay, grad_scale
        int64_t step
        int decoupled, amsgrad, maximize, eps_mode, state_format

    ctypedef struct adamcore_family_hyper:
        int kind
        double lr, weight_decay, grad_scale, eps, momentum, dampening, alpha, lr_decay
        double beta1, beta2
        int64_t step
        int maximize, nesterov, first, centered, decoupled, amsgrad, rectify

    int adamcore_adam_step_f32(const adamcore_tensor *, int64_t, const adamcore_adam_hyper *, int)
    int adamcore_adam_step_f64(const adamcore_tensor *, int64_t, const adamcore_adam_hyper *, int)
    int adamcore_family_step_f32(const adamcore_tensor *, int64_t,
                                 const adamcore_family_hyper *, int)
    int adamcore_family_step_f64(const adamcore_tensor *, int64_t,
                                 const adamcore_family_hyper *, int)
    int adamcore_simd_supported()
    int adamcore_simd_get()
    int adamcore_simd_set(int)
    const char *adamcore_simd_name(int)
    int adamcore_stream_probe_f32(float *, const float *, float *, float *, int64_t, int)
    ctypedef struct adamcore_array:
        const void *data
        int64_t n
    int64_t adamcore_norm_blocks(const adamcore_array *, int64_t)
    int adamcore_sumsq_f32(const adamcore_array *, int64_t, double *, int, double *, int *)
    int adamcore_sumsq_f64(const adamcore_array *, int64_t, double *, int, double *, int *)
    int adamcore_rank_sum_f32(const float *, int64_t, int64_t, int64_t, float, float *, int)
    int adamcore_rank_sum_f64(const double *, int64_t, int64_t, int64_t, double, double *,
                              int)
    const uint32_t *adamcore_qmap_bits(int)
    uint8_t adamcore_qencode(int, float)
    int adamcore_openmp_enabled()
    int adamcore_max_threads()

cdef extern from *:
    """
    #ifndef ADAMCORE_COMPILE_ARGS
    #define ADAMCORE_COMPILE_ARGS "unknown"
    #endif
    """
    const char *ADAMCORE_COMPILE_ARGS

cdef extern from "adamcore.h" nogil:
    ctypedef struct adamcore_row_grad:
        const void *rows
        const int64_t *order
        const int64_t *start
        const int64_t *unique
        int64_t n_unique, width
    ctypedef struct adamcore_table:
        void *param
        void *state[3]
        int64_t n_rows
    int adamcore_rows_coalesce(const void *, int, int64_t, int64_t, int64_t *, int64_t *,
                               int64_t *, int64_t *, int64_t *)
    int adamcore_adam_rows_f32(const adamcore_table *, const adamcore_row_grad *,
                               const adamcore_adam_hyper *, int, int)
    int adamcore_adam_rows_f64(const adamcore_table *, const adamcore_row_grad *,
                               const adamcore_adam_hyper *, int, int)
    int64_t adamcore_rows_norm_blocks(const adamcore_row_grad *)
    int adamcore_rows_sumsq_f32(const adamcore_row_grad *, double *, int, double *, int *)
    int adamcore_rows_sumsq_f64(const adamcore_row_grad *, double *, int, double *, int *)
