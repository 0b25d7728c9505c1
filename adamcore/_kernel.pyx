# cython: language_level=3, boundscheck=False, wraparound=False, freethreading_compatible=True
"""Binding to the C Adam kernel (csrc/): check everything, then call C with
the GIL released.

Checks run at C speed over the whole step (every bucket, see
adamcore._validate) before any kernel call, so a bad tensor anywhere leaves
every array untouched. When a check fails, adamcore._validate finds and words
the error, so this module and the NumPy reference refuse alike. The array
checks accept exactly what _validate accepts; the hyperparameter fast path
takes plain floats and ints only, and defers anything else to _validate.
"""

from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.long cimport PyLong_AsLongAndOverflow
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from libc.math cimport INFINITY, isfinite
from libc.stdint cimport int64_t, uintptr_t
from libc.string cimport memcmp, memcpy, memset

cimport numpy as cnp

import numpy as np

from adamcore import _validate

cnp.import_array()

cdef extern from "adamcore.h" nogil:
    enum:
        ADAMCORE_OK
        ADAMCORE_EPS_TORCH
        ADAMCORE_EPS_KERAS
        ADAMCORE_SIMD_COUNT
        ADAMCORE_PARALLEL_MIN

    ctypedef struct adamcore_tensor:
        void *param
        const void *grad
        void *exp_avg
        void *exp_avg_sq
        void *max_exp_avg_sq
        int64_t n

    ctypedef struct adamcore_adam_hyper:
        double lr, beta1, beta2, eps, weight_decay, grad_scale
        int64_t step
        int decoupled, amsgrad, maximize, eps_mode

    int adamcore_adam_step_f32(const adamcore_tensor *, int64_t, const adamcore_adam_hyper *, int)
    int adamcore_adam_step_f64(const adamcore_tensor *, int64_t, const adamcore_adam_hyper *, int)
    enum:
        ADAMCORE_SGD
        ADAMCORE_RMSPROP
        ADAMCORE_ADAGRAD
        ADAMCORE_ADABELIEF

    ctypedef struct adamcore_family_tensor:
        void *param
        const void *grad
        void *state[3]
        int64_t n

    ctypedef struct adamcore_family_hyper:
        int kind
        double lr, weight_decay, grad_scale, eps, momentum, dampening, alpha, lr_decay
        double beta1, beta2
        int64_t step
        int maximize, nesterov, first, centered, decoupled, amsgrad, rectify

    int adamcore_family_step_f32(const adamcore_family_tensor *, int64_t,
                                 const adamcore_family_hyper *, int)
    int adamcore_family_step_f64(const adamcore_family_tensor *, int64_t,
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
    int adamcore_openmp_enabled()
    int adamcore_max_threads()

cdef extern from *:
    """
    #ifndef ADAMCORE_COMPILE_ARGS
    #define ADAMCORE_COMPILE_ARGS "unknown"
    #endif
    """
    const char *ADAMCORE_COMPILE_ARGS

PARALLEL_MIN = ADAMCORE_PARALLEL_MIN
COMPILE_ARGS = ADAMCORE_COMPILE_ARGS.decode()


# ---- build and run-time configuration ------------------------------------

def openmp_enabled():
    return bool(adamcore_openmp_enabled())


def max_threads():
    """OpenMP's current thread limit (1 without OpenMP)."""
    return adamcore_max_threads()


def simd_levels():
    """Names of the SIMD levels this build and CPU run, lowest first."""
    return [adamcore_simd_name(i).decode() for i in range(adamcore_simd_supported() + 1)]


def simd_level():
    """Name of the SIMD level in use."""
    return adamcore_simd_name(adamcore_simd_get()).decode()


def set_simd_level(name):
    """Use SIMD level ``name`` from now on; returns the previous level's name.

    Every level gives the same bits; this exists to test and measure that.
    """
    names = [adamcore_simd_name(i).decode() for i in range(ADAMCORE_SIMD_COUNT)]
    if name not in names:
        raise ValueError(f"SIMD level must be one of {names}, got {name!r}")
    previous = simd_level()
    if adamcore_simd_set(names.index(name)) != ADAMCORE_OK:
        raise ValueError(f"SIMD level {name!r} is not supported here; available: {simd_levels()}")
    return previous


cpdef int resolve_n_threads(object n_threads) except -1:
    """None: OpenMP's limit; n >= 1: n; n < 0: limit + 1 + n, at least 1."""
    cdef long n
    cdef int overflow = 0
    if n_threads is None:
        return adamcore_max_threads()
    if type(n_threads) is not int:
        _validate.check_n_threads(n_threads)  # raises, or accepts an integer type
    n = PyLong_AsLongAndOverflow(n_threads, &overflow)
    if n == 0 and not overflow:
        _validate.check_n_threads(n_threads)
    n = (1 << 20) * overflow if overflow else max(min(n, 1 << 20), -(1 << 20))
    if n < 0:
        n = adamcore_max_threads() + 1 + n
        return n if n > 1 else 1
    return n


# ---- checks --------------------------------------------------------------

cdef void _sort_keys(uintptr_t *a, uintptr_t *tmp, Py_ssize_t n) noexcept nogil:
    """Sort n addresses in place: insertion sort when short, else an LSD radix
    sort by bytes that skips the bytes all keys share (most of an address)."""
    cdef Py_ssize_t i, j, d, total, c
    cdef Py_ssize_t count[256]
    cdef uintptr_t key
    cdef uintptr_t *swap
    cdef uintptr_t *src = a
    cdef uintptr_t *dst = tmp
    cdef Py_ssize_t shift
    cdef uintptr_t varying = 0
    if n <= 32:
        for i in range(1, n):
            key = a[i]
            j = i - 1
            while j >= 0 and a[j] > key:
                a[j + 1] = a[j]
                j -= 1
            a[j + 1] = key
        return
    for i in range(n):
        varying |= a[i] ^ a[0]
    for shift in range(0, <Py_ssize_t>(8 * sizeof(uintptr_t)), 8):
        if (varying >> shift) & 255 == 0:
            continue
        memset(count, 0, sizeof(count))
        for i in range(n):
            count[(src[i] >> shift) & 255] += 1
        total = 0
        for d in range(256):
            c = count[d]
            count[d] = total
            total += c
        for i in range(n):
            d = (src[i] >> shift) & 255
            dst[count[d]] = src[i]
            count[d] += 1
        swap = src
        src = dst
        dst = swap
    if src != a:
        memcpy(a, src, n * sizeof(uintptr_t))


cdef bint _disjoint(uintptr_t *starts, uintptr_t *ends, uintptr_t *tmp, Py_ssize_t n) noexcept nogil:
    """No two non-empty [start, end) ranges share a byte. Sorting the starts and
    the ends separately is enough: ranges are disjoint iff the (i+1)-th
    smallest start is >= the i-th smallest end, for every i."""
    cdef Py_ssize_t i, k = _sorted_spans(starts, ends, tmp, n)
    for i in range(1, k):
        if starts[i] < ends[i - 1]:
            return False
    return True


cdef Py_ssize_t _sorted_spans(uintptr_t *starts, uintptr_t *ends, uintptr_t *tmp,
                             Py_ssize_t n) noexcept nogil:
    """Drop the empty [start, end) ranges, sort the starts and the ends of the
    rest separately, in place; returns how many remain."""
    cdef Py_ssize_t i, k = 0
    for i in range(n):
        if ends[i] > starts[i]:
            starts[k] = starts[i]
            ends[k] = ends[i]
            k += 1
    _sort_keys(starts, tmp, k)
    _sort_keys(ends, tmp, k)
    return k


cdef bint _merged_disjoint(const uintptr_t *a_starts, const uintptr_t *a_ends, Py_ssize_t na,
                           const uintptr_t *b_starts, const uintptr_t *b_ends,
                           Py_ssize_t nb) noexcept nogil:
    """_disjoint's test over the union of two sets of sorted starts and ends,
    merged on the fly: the (t+1)-th smallest start is >= the t-th smallest end."""
    cdef Py_ssize_t t, i = 0, j = 0, p = 0, q = 0
    cdef uintptr_t start, last_end = 0
    for t in range(na + nb):
        if j >= nb or (i < na and a_starts[i] <= b_starts[j]):
            start = a_starts[i]
            i += 1
        else:
            start = b_starts[j]
            j += 1
        if t > 0 and start < last_end:
            return False
        if q >= nb or (p < na and a_ends[p] <= b_ends[q]):
            last_end = a_ends[p]
            p += 1
        else:
            last_end = b_ends[q]
            q += 1
    return True


cdef class _Spans:
    """Byte spans of buffers, as passed (row order) and sorted. An optimizer
    keeps the last step's in its scratch dict (see _step_disjoint)."""
    cdef uintptr_t *raw  # n starts, then n ends, in row order
    cdef uintptr_t *starts
    cdef uintptr_t *ends
    cdef Py_ssize_t n, k
    cdef object disjoint_from  # grads' spans: the state spans they were checked against

    def __cinit__(self):
        self.n = -1  # matches nothing until _new_spans fills it

    def __dealloc__(self):
        PyMem_Free(self.raw)

    def __reduce__(self):
        # a copied optimizer (copy.deepcopy, pickle) starts with an empty cache
        return (_Spans, ())

    cdef bint same(self, const uintptr_t *starts, const uintptr_t *ends, Py_ssize_t n) noexcept:
        return (n == self.n and memcmp(self.raw, starts, n * sizeof(uintptr_t)) == 0
                and memcmp(self.raw + n, ends, n * sizeof(uintptr_t)) == 0)


cdef _Spans _new_spans(const uintptr_t *starts, const uintptr_t *ends, Py_ssize_t n,
                       uintptr_t *tmp):
    cdef _Spans s = _Spans.__new__(_Spans)
    s.raw = <uintptr_t *>PyMem_Malloc(max(4 * n, 1) * sizeof(uintptr_t))
    if s.raw == NULL:
        raise MemoryError()
    s.n = n
    memcpy(s.raw, starts, n * sizeof(uintptr_t))
    memcpy(s.raw + n, ends, n * sizeof(uintptr_t))
    s.starts = s.raw + 2 * n
    s.ends = s.raw + 3 * n
    memcpy(s.starts, starts, n * sizeof(uintptr_t))
    memcpy(s.ends, ends, n * sizeof(uintptr_t))
    s.k = _sorted_spans(s.starts, s.ends, tmp, n)
    return s


# The scratch dict's keys for the kept _Spans of params and state, and of grads.
_SPANS = "adamcore._kernel spans"
_GRAD_SPANS = "adamcore._kernel grad spans"


cdef bint _step_disjoint(uintptr_t *starts, uintptr_t *ends, Py_ssize_t n,
                         uintptr_t *grad_starts, uintptr_t *grad_ends, Py_ssize_t n_grads,
                         uintptr_t *tmp, object scratch) except -1:
    """No two buffers of a step overlap: params and state (``starts``,
    ``ends``) and grads. ``scratch`` is None (everything is sorted in place)
    or an optimizer's dict, which keeps the last spans (replaced, never
    changed, so concurrent steps may share them). An optimizer's params and
    state stay put, so their spans are sorted again only when they moved; its
    grads often land at the same addresses step after step (the allocator
    reuses the last step's blocks), and spans already found disjoint from the
    same state spans need no sort at all."""
    cdef _Spans kept = None, kept_grads
    cdef Py_ssize_t k
    cdef bint ok
    if type(scratch) is not dict:
        k = _sorted_spans(starts, ends, tmp, n)
        return _merged_disjoint(starts, ends, k, grad_starts, grad_ends,
                                _sorted_spans(grad_starts, grad_ends, tmp, n_grads))
    found = (<dict>scratch).get(_SPANS)
    if type(found) is _Spans and (<_Spans>found).same(starts, ends, n):
        kept = <_Spans>found
    else:
        kept = _new_spans(starts, ends, n, tmp)
        (<dict>scratch)[_SPANS] = kept
    found = (<dict>scratch).get(_GRAD_SPANS)
    if (type(found) is _Spans and (<_Spans>found).disjoint_from is kept
            and (<_Spans>found).same(grad_starts, grad_ends, n_grads)):
        return True
    kept_grads = _new_spans(grad_starts, grad_ends, n_grads, tmp)
    ok = _merged_disjoint(kept.starts, kept.ends, kept.k, kept_grads.starts, kept_grads.ends,
                          kept_grads.k)
    if ok:
        kept_grads.disjoint_from = kept
        (<dict>scratch)[_GRAD_SPANS] = kept_grads
    return ok


cdef inline bint _real_ok(object x, double lo, double hi) noexcept:
    """x is a Python float, or an int of at most 2**53, finite, in [lo, hi).

    Deliberately narrow: anything else (NumPy scalars, huge ints) is left to
    adamcore._validate, which accepts or refuses it."""
    cdef double d
    if isinstance(x, float):
        d = <double>x
    elif type(x) is int and -9007199254740992 <= x <= 9007199254740992:
        d = <double>x
    else:
        return False
    return isfinite(d) and d >= lo and d < hi


cdef inline double _as_double(object x) except? -1.0:
    """float(x), without a call for a plain float."""
    return PyFloat_AS_DOUBLE(x) if type(x) is float else float(x)


cdef inline int64_t _as_int64(object x) except? -1:
    """int(x), without a call for a plain int (a checked step fits)."""
    return <int64_t>x if type(x) is int else <int64_t>int(x)


cdef bint _hyper_ok(tuple hyper) noexcept:
    if len(hyper) != 10:
        return False
    lr, beta1, beta2, eps, weight_decay, step, decoupled, maximize, eps_mode, grad_scale = hyper
    return (type(decoupled) is bool and type(maximize) is bool
            and _real_ok(lr, 0.0, INFINITY) and _real_ok(beta1, 0.0, 1.0)
            and _real_ok(beta2, 0.0, 1.0) and _real_ok(eps, 0.0, INFINITY)
            and _real_ok(weight_decay, 0.0, INFINITY) and _real_ok(grad_scale, 0.0, INFINITY)
            and type(step) is int and 1 <= step <= 9007199254740992
            and (eps_mode == "torch" or eps_mode == "keras"))


cdef void _to_hyper(tuple hyper, bint amsgrad, adamcore_adam_hyper *h) except *:
    lr, beta1, beta2, eps, weight_decay, step, decoupled, maximize, eps_mode, grad_scale = hyper
    h.lr = _as_double(lr)
    h.grad_scale = _as_double(grad_scale)
    h.beta1 = _as_double(beta1)
    h.beta2 = _as_double(beta2)
    h.eps = _as_double(eps)
    h.weight_decay = _as_double(weight_decay)
    h.step = _as_int64(step)
    h.decoupled = bool(decoupled)
    h.maximize = bool(maximize)
    h.amsgrad = amsgrad
    h.eps_mode = ADAMCORE_EPS_KERAS if eps_mode == "keras" else ADAMCORE_EPS_TORCH


cdef bint _array_ok(object obj, cnp.ndarray param, int order_flag, bint writeable,
                    uintptr_t *start, uintptr_t *end) noexcept:
    """obj matches param in type, dtype, shape and layout; record its byte span."""
    cdef cnp.ndarray a
    cdef int flags, k
    cdef cnp.npy_intp dim, nbytes
    if not cnp.PyArray_Check(obj):
        return False
    a = <cnp.ndarray>obj
    flags = cnp.PyArray_FLAGS(a)
    if cnp.PyArray_TYPE(a) != cnp.PyArray_TYPE(param) or cnp.PyArray_NDIM(a) != cnp.PyArray_NDIM(param):
        return False
    nbytes = cnp.PyArray_ITEMSIZE(a)
    for k in range(cnp.PyArray_NDIM(a)):
        dim = cnp.PyArray_DIM(a, k)
        if dim != cnp.PyArray_DIM(param, k):
            return False
        nbytes *= dim  # cannot overflow: NumPy bounds an array's bytes
    if not (flags & order_flag) or not (flags & cnp.NPY_ARRAY_ALIGNED) or not cnp.PyArray_ISNOTSWAPPED(a):
        return False
    if writeable and not (flags & cnp.NPY_ARRAY_WRITEABLE):
        return False
    start[0] = <uintptr_t>cnp.PyArray_DATA(a)
    end[0] = start[0] + <uintptr_t>nbytes
    return True


cdef bint _bucket_ok(tuple bucket, Py_ssize_t cap, adamcore_tensor *table, uintptr_t *starts,
                     uintptr_t *ends, Py_ssize_t *n_spans, uintptr_t *grad_starts,
                     uintptr_t *grad_ends, int *typenum) noexcept:
    """Check one bucket's arrays and fill its rows of the tensor table, which
    has room for ``cap`` more rows: the param and state spans are appended at
    ``starts[n_spans]``, the grads' go to ``grad_starts[row]``."""
    cdef list params, grads, ms, vs
    cdef object vmaxs
    cdef cnp.ndarray p
    cdef Py_ssize_t k, n, n0
    cdef int order_flag, flags
    if not (type(bucket[0]) is list and type(bucket[1]) is list and type(bucket[2]) is list
            and type(bucket[3]) is list):
        return False
    params, grads, ms, vs, vmaxs = bucket[0], bucket[1], bucket[2], bucket[3], bucket[4]
    n = len(params)
    if n > cap:  # the list grew since the table was sized (a hyper's __float__)
        return False
    if len(grads) != n or len(ms) != n or len(vs) != n:
        return False
    if vmaxs is not None and (type(vmaxs) is not list or len(<list>vmaxs) != n):
        return False
    if bucket[5] is not None and (type(bucket[5]) is not list or len(<list>bucket[5]) != n):
        return False
    typenum[0] = -1
    for k in range(n):
        if not cnp.PyArray_Check(params[k]):
            return False
        p = <cnp.ndarray>params[k]
        if typenum[0] == -1:
            typenum[0] = cnp.PyArray_TYPE(p)
            if typenum[0] != cnp.NPY_FLOAT32 and typenum[0] != cnp.NPY_FLOAT64:
                return False
        elif cnp.PyArray_TYPE(p) != typenum[0]:
            return False
        flags = cnp.PyArray_FLAGS(p)
        order_flag = cnp.NPY_ARRAY_C_CONTIGUOUS if flags & cnp.NPY_ARRAY_C_CONTIGUOUS else cnp.NPY_ARRAY_F_CONTIGUOUS
        n0 = n_spans[0]
        if not (_array_ok(p, p, order_flag, True, &starts[n0], &ends[n0])
                and _array_ok(grads[k], p, order_flag, False, &grad_starts[k], &grad_ends[k])
                and _array_ok(ms[k], p, order_flag, True, &starts[n0 + 1], &ends[n0 + 1])
                and _array_ok(vs[k], p, order_flag, True, &starts[n0 + 2], &ends[n0 + 2])):
            return False
        table[k].param = <void *>starts[n0]
        table[k].grad = <const void *>grad_starts[k]
        table[k].exp_avg = <void *>starts[n0 + 1]
        table[k].exp_avg_sq = <void *>starts[n0 + 2]
        table[k].max_exp_avg_sq = NULL
        table[k].n = cnp.PyArray_SIZE(p)
        n_spans[0] += 3
        if vmaxs is not None:
            n0 = n_spans[0]
            if not _array_ok((<list>vmaxs)[k], p, order_flag, True, &starts[n0], &ends[n0]):
                return False
            table[k].max_exp_avg_sq = <void *>starts[n0]
            n_spans[0] += 1
    return True


# ---- the step ------------------------------------------------------------

cdef enum:
    _STACK_WORDS = 512  # 4 KiB: a step this small needs no heap (a few tensors)
    _STACK_BYTES = 8 * _STACK_WORDS


cdef struct _Work:
    # One step's tables, carved from one block: ``hypers`` (one per bucket),
    # ``table`` (one row per tensor), ``keys`` (14 per tensor, see
    # adam_step_buckets), ``counts`` and ``typenums`` (one per bucket).
    void *hypers
    void *table
    uintptr_t *keys
    Py_ssize_t *counts
    int *typenums
    void *heap  # the block when it is not the caller's stack buffer


cdef int _work_init(_Work *w, Py_ssize_t n_tensors, Py_ssize_t n_buckets, size_t row_size,
                    size_t hyper_size, char *stack) except -1:
    """Carve ``w`` from ``stack`` (_STACK_BYTES long) when it fits, else from
    one heap block (freed by _work_free). Every size is a multiple of 8 but
    the last, so every part stays aligned."""
    cdef size_t a = max(n_buckets, 1) * hyper_size
    cdef size_t b = a + max(n_tensors, 1) * row_size
    cdef size_t c = b + max(14 * n_tensors, 1) * sizeof(uintptr_t)
    cdef size_t d = c + max(n_buckets, 1) * sizeof(Py_ssize_t)
    cdef size_t total = d + max(n_buckets, 1) * sizeof(int)
    cdef char *block = stack
    w.heap = NULL
    if total > _STACK_BYTES:
        w.heap = PyMem_Malloc(total)
        if w.heap == NULL:
            raise MemoryError()
        block = <char *>w.heap
    w.hypers = block
    w.table = block + a
    w.keys = <uintptr_t *>(block + b)
    w.counts = <Py_ssize_t *>(block + c)
    w.typenums = <int *>(block + d)
    return 0


cdef inline void _work_free(_Work *w) noexcept:
    PyMem_Free(w.heap)


def adam_step_buckets(buckets, n_threads=None, scratch=None):
    """Validate the whole step, then run each bucket as one GIL-free C call.
    ``scratch`` (the signature of the NumPy reference, whose buffers it holds)
    is None or an optimizer's dict, where the sorted spans of its params and
    state are kept between steps (see _step_disjoint).

    ``keys`` holds, for n tensors: the param and state spans' starts [0, 4n)
    and ends [4n, 8n), the grads' starts [8n, 9n) and ends [9n, 10n), and the
    sort's work space [10n, 14n)."""
    cdef Py_ssize_t n_tensors = 0, n_spans = 0, b, row = 0, count
    cdef int nt, status, typenum
    cdef _Work w
    cdef double stack[_STACK_WORDS]  # 8-byte aligned, for the tables
    cdef adamcore_tensor *table
    cdef uintptr_t *keys
    cdef adamcore_adam_hyper *hypers
    cdef int *typenums
    cdef Py_ssize_t *counts
    cdef bint ok = True
    if type(buckets) is not list:
        _validate.check_buckets(buckets, n_threads)
    buckets = list(buckets)  # a copy: hyperparameter objects run Python code below
    for bucket in buckets:
        if type(bucket) is not tuple or len(<tuple>bucket) != 7 or type(bucket[0]) is not list:
            _validate.check_buckets(buckets, n_threads)
            raise TypeError("each bucket must be a tuple of 7 items (see adamcore._validate)")
        n_tensors += len(<list>bucket[0])
    nt = resolve_n_threads(n_threads)
    _work_init(&w, n_tensors, len(buckets), sizeof(adamcore_tensor),
               sizeof(adamcore_adam_hyper), <char *>stack)
    table, keys, hypers = <adamcore_tensor *>w.table, w.keys, <adamcore_adam_hyper *>w.hypers
    typenums, counts = w.typenums, w.counts
    try:
        for b in range(len(buckets)):
            bucket = buckets[b]
            hyper = bucket[6]
            if type(hyper) is not tuple or not _hyper_ok(hyper):
                _validate.check_hyper(hyper)  # raises, or accepts what the fast check left out
            if not _bucket_ok(bucket, n_tensors - row, table + row, keys, keys + 4 * n_tensors,
                              &n_spans, keys + 8 * n_tensors + row, keys + 9 * n_tensors + row,
                              &typenums[b]):
                ok = False
                break
            counts[b] = len(<list>bucket[0])
            row += counts[b]
        ok = ok and _step_disjoint(keys, keys + 4 * n_tensors, n_spans, keys + 8 * n_tensors,
                                   keys + 9 * n_tensors, row, keys + 10 * n_tensors, scratch)
        if not ok:
            _validate.check_buckets(buckets, n_threads)
            raise RuntimeError("adamcore internal error: the C checks refused a step that "
                               "adamcore._validate accepts")
        for b in range(len(buckets)):
            _to_hyper(buckets[b][6], buckets[b][4] is not None, &hypers[b])
        row = 0
        for b in range(len(buckets)):
            count = counts[b]
            typenum = typenums[b]
            with nogil:
                if typenum == cnp.NPY_FLOAT64:
                    status = adamcore_adam_step_f64(table + row, count, &hypers[b], nt)
                else:
                    status = adamcore_adam_step_f32(table + row, count, &hypers[b], nt)
            if status != ADAMCORE_OK:
                raise RuntimeError(f"adamcore internal error: the C kernel returned {status}")
            row += count
    finally:
        _work_free(&w)


def adam_step_one(param, grad, exp_avg, exp_avg_sq, max_exp_avg_sq, step, lr, beta1, beta2,
                  eps, weight_decay, decoupled, maximize, eps_mode, grad_scale, n_threads):
    """One tensor's step (functional.adam_step): the checks of
    adam_step_buckets on the stack, no allocation; anything the fast checks
    do not take goes through adam_step_buckets, which words the error."""
    cdef uintptr_t starts[5]
    cdef uintptr_t ends[5]
    cdef uintptr_t tmp[5]
    cdef adamcore_tensor t
    cdef adamcore_adam_hyper h
    cdef cnp.ndarray p
    cdef int order_flag, flags, typenum = 0, nt, status, n_spans = 4
    hyper = (lr, beta1, beta2, eps, weight_decay, step, decoupled, maximize, eps_mode, grad_scale)
    ok = cnp.PyArray_Check(param) and _hyper_ok(hyper) and (n_threads is None or (
        type(n_threads) is int and n_threads != 0))
    if ok:
        p = <cnp.ndarray>param
        typenum = cnp.PyArray_TYPE(p)
        flags = cnp.PyArray_FLAGS(p)
        order_flag = (cnp.NPY_ARRAY_C_CONTIGUOUS if flags & cnp.NPY_ARRAY_C_CONTIGUOUS
                      else cnp.NPY_ARRAY_F_CONTIGUOUS)
        ok = ((typenum == cnp.NPY_FLOAT32 or typenum == cnp.NPY_FLOAT64)
              and _array_ok(p, p, order_flag, True, &starts[0], &ends[0])
              and _array_ok(grad, p, order_flag, False, &starts[1], &ends[1])
              and _array_ok(exp_avg, p, order_flag, True, &starts[2], &ends[2])
              and _array_ok(exp_avg_sq, p, order_flag, True, &starts[3], &ends[3]))
        if ok and max_exp_avg_sq is not None:
            ok = _array_ok(max_exp_avg_sq, p, order_flag, True, &starts[4], &ends[4])
            n_spans = 5
    if ok:
        t.param, t.grad = <void *>starts[0], <const void *>starts[1]
        t.exp_avg, t.exp_avg_sq = <void *>starts[2], <void *>starts[3]
        t.max_exp_avg_sq = <void *>starts[4] if n_spans == 5 else NULL
        t.n = cnp.PyArray_SIZE(p)
        ok = _disjoint(starts, ends, tmp, n_spans)
    if not ok:
        vmaxs = None if max_exp_avg_sq is None else [max_exp_avg_sq]
        adam_step_buckets([([param], [grad], [exp_avg], [exp_avg_sq], vmaxs, None, hyper)],
                          n_threads)
        return
    nt = resolve_n_threads(n_threads)
    _to_hyper(hyper, n_spans == 5, &h)
    with nogil:
        if typenum == cnp.NPY_FLOAT64:
            status = adamcore_adam_step_f64(&t, 1, &h, nt)
        else:
            status = adamcore_adam_step_f32(&t, 1, &h, nt)
    if status != ADAMCORE_OK:
        raise RuntimeError(f"adamcore internal error: the C kernel returned {status}")


# ---- Adam's planned step --------------------------------------------------

def adam_planned_step(opt, grads, scale):
    """adamcore._base.Optimizer._step_planned with Adam._bucket, compiled:
    the same buckets, from the same group options, in the same order, run by
    adam_step_buckets (Adam.step's fixed cost was mostly these two Python
    functions). False, with nothing done, when a grad is None or a group's
    amsgrad no longer matches its plan's state."""
    cdef list plans = opt._plans
    cdef Py_ssize_t k, lo, hi, n
    cdef bint whole = len(plans) == 1
    cdef list buckets = []
    cdef list plan
    groups = opt.param_groups
    n = min(len(plans), len(groups))
    for k in range(n):
        group, plan = groups[k], plans[k]
        lo, hi, keys, lists, step = plan
        if bool(group["amsgrad"]) != (len(<tuple>keys) == 3):  # Adam._state_keys
            return False
        if lo < hi:
            ps, (ms, vs, vmaxs), idx = lists
            betas = group["betas"]
            if type(betas) is not tuple or len(<tuple>betas) != 2:
                _validate.check_beta_pair(betas)  # as Adam._bucket
            beta1, beta2 = betas
            buckets.append((ps, grads if whole else grads[lo:hi], ms, vs, vmaxs, idx,
                            (group["lr"], beta1, beta2, group["eps"], group["weight_decay"],
                             step + 1, bool(group["decoupled_weight_decay"]),
                             bool(group["maximize"]), group["eps_mode"], scale)))
    try:
        adam_step_buckets(buckets, opt.n_threads, opt._scratch)
    except TypeError:
        if any(g is None for g in grads):  # refused before any change: go general
            return False
        raise
    for plan in plans:
        plan[4] += 1
    return True


# ---- the optimizer family ------------------------------------------------

_KINDS = {"sgd": ADAMCORE_SGD, "rmsprop": ADAMCORE_RMSPROP, "adagrad": ADAMCORE_ADAGRAD,
          "adabelief": ADAMCORE_ADABELIEF}


_FAMILY_REALS = ("lr", "weight_decay", "grad_scale", "eps", "momentum", "alpha", "lr_decay")
_FAMILY_FLAGS = ("maximize", "nesterov", "first", "centered", "decoupled", "amsgrad", "rectify")


cdef bint _family_hyper_ok(dict h) noexcept:
    """The common case at C speed: exactly the keys of FAMILY_HYPER, plain
    floats/ints in range for every key (unused ones hold neutral values) and
    plain bools. Anything else is left to adamcore._validate."""
    kind = h.get("kind")
    if len(h) != len(_validate.FAMILY_HYPER) or type(kind) is not str or kind not in _KINDS:
        return False
    for key in _FAMILY_REALS:
        if not _real_ok(h.get(key), 0.0, INFINITY):
            return False
    for key in _FAMILY_FLAGS:
        if type(h.get(key)) is not bool:
            return False
    step = h.get("step")
    return (_real_ok(h.get("dampening"), -INFINITY, INFINITY)
            and _real_ok(h.get("beta1"), 0.0, 1.0) and _real_ok(h.get("beta2"), 0.0, 1.0)
            and type(step) is int and 1 <= step <= 9007199254740992
            and (not h["nesterov"] or (h["momentum"] > 0 and h["dampening"] == 0)))


cdef void _to_family_hyper(dict h, adamcore_family_hyper *out) except *:
    out.kind = _KINDS[h["kind"]]
    out.lr = _as_double(h["lr"])
    out.weight_decay = _as_double(h["weight_decay"])
    out.grad_scale = _as_double(h["grad_scale"])
    out.eps = _as_double(h["eps"])
    out.momentum = _as_double(h["momentum"])
    out.dampening = _as_double(h["dampening"])
    out.alpha = _as_double(h["alpha"])
    out.lr_decay = _as_double(h["lr_decay"])
    out.beta1 = _as_double(h["beta1"])
    out.beta2 = _as_double(h["beta2"])
    out.step = _as_int64(h["step"])
    out.maximize = bool(h["maximize"])
    out.nesterov = bool(h["nesterov"])
    out.first = bool(h["first"])
    out.centered = bool(h["centered"])
    out.decoupled = bool(h["decoupled"])
    out.amsgrad = bool(h["amsgrad"])
    out.rectify = bool(h["rectify"])


cdef int _required_slots(const adamcore_family_hyper *h) noexcept:
    """Bit k: state[k] is used (adamcore._validate.required_slots)."""
    if h.kind == ADAMCORE_SGD:
        return 1 if h.momentum != 0.0 else 0
    if h.kind == ADAMCORE_RMSPROP:
        return 1 | (2 if h.momentum != 0.0 else 0) | (4 if h.centered else 0)
    if h.kind == ADAMCORE_ADAGRAD:
        return 1
    return 3 | (4 if h.amsgrad else 0)


cdef bint _family_bucket_ok(tuple bucket, int slots, Py_ssize_t cap,
                            adamcore_family_tensor *table, uintptr_t *starts, uintptr_t *ends,
                            Py_ssize_t *n_spans, uintptr_t *grad_starts, uintptr_t *grad_ends,
                            int *typenum) noexcept:
    """Check one family bucket's arrays (``slots``: the state slots its
    hyperparameters use) and fill its rows of the tensor table, as
    _bucket_ok does."""
    cdef list params, grads
    cdef object states
    cdef cnp.ndarray p
    cdef Py_ssize_t k, j, n, n0
    cdef int order_flag, flags
    if type(bucket[0]) is not list or type(bucket[1]) is not list or type(bucket[2]) is not tuple:
        return False
    params, grads, states = bucket[0], bucket[1], bucket[2]
    n = len(params)
    if n > cap:  # the list grew since the table was sized (a hyper's __float__)
        return False
    if len(grads) != n or len(<tuple>states) != 3:
        return False
    if bucket[3] is not None and (type(bucket[3]) is not list or len(<list>bucket[3]) != n):
        return False
    for j in range(3):
        slot = (<tuple>states)[j]
        if (slot is not None) != bool((slots >> j) & 1):
            return False
        if slot is not None and (type(slot) is not list or len(<list>slot) != n):
            return False
    typenum[0] = -1
    for k in range(n):
        if not cnp.PyArray_Check(params[k]):
            return False
        p = <cnp.ndarray>params[k]
        if typenum[0] == -1:
            typenum[0] = cnp.PyArray_TYPE(p)
            if typenum[0] != cnp.NPY_FLOAT32 and typenum[0] != cnp.NPY_FLOAT64:
                return False
        elif cnp.PyArray_TYPE(p) != typenum[0]:
            return False
        flags = cnp.PyArray_FLAGS(p)
        order_flag = cnp.NPY_ARRAY_C_CONTIGUOUS if flags & cnp.NPY_ARRAY_C_CONTIGUOUS else cnp.NPY_ARRAY_F_CONTIGUOUS
        n0 = n_spans[0]
        if not (_array_ok(p, p, order_flag, True, &starts[n0], &ends[n0])
                and _array_ok(grads[k], p, order_flag, False, &grad_starts[k], &grad_ends[k])):
            return False
        table[k].param = <void *>starts[n0]
        table[k].grad = <const void *>grad_starts[k]
        table[k].n = cnp.PyArray_SIZE(p)
        n_spans[0] += 1
        for j in range(3):
            table[k].state[j] = NULL
            slot = (<tuple>states)[j]
            if slot is not None:
                n0 = n_spans[0]
                if not _array_ok((<list>slot)[k], p, order_flag, True, &starts[n0], &ends[n0]):
                    return False
                table[k].state[j] = <void *>starts[n0]
                n_spans[0] += 1
    return True


def family_step_buckets(buckets, n_threads=None, scratch=None):
    """The optimizer family's step (see adamcore._validate): validate every
    bucket, then run each as one GIL-free C call (csrc/family_step.c).
    ``scratch`` and ``keys`` as in adam_step_buckets."""
    cdef Py_ssize_t n_tensors = 0, n_spans = 0, b, row = 0, count
    cdef int nt, status, typenum
    cdef _Work w
    cdef double stack[_STACK_WORDS]  # 8-byte aligned, for the tables
    cdef adamcore_family_tensor *table
    cdef uintptr_t *keys
    cdef adamcore_family_hyper *hypers
    cdef int *typenums
    cdef Py_ssize_t *counts
    cdef bint ok = True
    if type(buckets) is not list:
        _validate.check_family_buckets(buckets, n_threads)
    buckets = list(buckets)  # a copy: hyperparameter objects run Python code below
    for bucket in buckets:
        if type(bucket) is not tuple or len(<tuple>bucket) != 5 or type(bucket[0]) is not list:
            _validate.check_family_buckets(buckets, n_threads)
            raise TypeError("each family bucket must be a tuple of 5 items (see adamcore._validate)")
        n_tensors += len(<list>bucket[0])
    nt = resolve_n_threads(n_threads)
    _work_init(&w, n_tensors, len(buckets), sizeof(adamcore_family_tensor),
               sizeof(adamcore_family_hyper), <char *>stack)
    table, keys, hypers = <adamcore_family_tensor *>w.table, w.keys, <adamcore_family_hyper *>w.hypers
    typenums, counts = w.typenums, w.counts
    try:
        for b in range(len(buckets)):
            hyper = buckets[b][4]
            if type(hyper) is not dict or not _family_hyper_ok(hyper):
                _validate.check_family_hyper(hyper)  # raises, or accepts what the fast check left out
            _to_family_hyper(hyper, &hypers[b])
            if not _family_bucket_ok(buckets[b], _required_slots(&hypers[b]), n_tensors - row,
                                     table + row, keys, keys + 4 * n_tensors, &n_spans,
                                     keys + 8 * n_tensors + row, keys + 9 * n_tensors + row,
                                     &typenums[b]):
                ok = False
                break
            counts[b] = len(<list>buckets[b][0])
            row += counts[b]
        ok = ok and _step_disjoint(keys, keys + 4 * n_tensors, n_spans, keys + 8 * n_tensors,
                                   keys + 9 * n_tensors, row, keys + 10 * n_tensors, scratch)
        if not ok:
            _validate.check_family_buckets(buckets, n_threads)
            raise RuntimeError("adamcore internal error: the C checks refused a step that "
                               "adamcore._validate accepts")
        row = 0
        for b in range(len(buckets)):
            count = counts[b]
            typenum = typenums[b]
            with nogil:
                if typenum == cnp.NPY_FLOAT64:
                    status = adamcore_family_step_f64(table + row, count, &hypers[b], nt)
                else:
                    status = adamcore_family_step_f32(table + row, count, &hypers[b], nt)
            if status != ADAMCORE_OK:
                raise RuntimeError(f"adamcore internal error: the C kernel returned {status}")
            row += count
    finally:
        _work_free(&w)


# ---- gradient norms ------------------------------------------------------

def grad_sumsq(list grads, n_threads=None):
    """(sum of squares, any element NaN or inf) of arrays of one dtype, in one
    GIL-free pass (csrc/grad_norm.c): the same bits for any thread count."""
    cdef Py_ssize_t k, n = len(grads)
    cdef int nt = resolve_n_threads(n_threads), typenum = cnp.NPY_FLOAT32, status, flags
    cdef int nonfinite = 0
    cdef double total = 0.0
    cdef cnp.ndarray a
    cdef adamcore_array *table = NULL
    cdef double *work = NULL
    cdef int64_t n_blocks
    for k in range(n):
        g = grads[k]
        if not cnp.PyArray_Check(g):
            _validate.check_norm_arrays(grads)
        a = <cnp.ndarray>g
        flags = cnp.PyArray_FLAGS(a)
        if k == 0:
            typenum = cnp.PyArray_TYPE(a)
        if (cnp.PyArray_TYPE(a) != typenum
                or (typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64)
                or not (flags & (cnp.NPY_ARRAY_C_CONTIGUOUS | cnp.NPY_ARRAY_F_CONTIGUOUS))
                or not (flags & cnp.NPY_ARRAY_ALIGNED) or not cnp.PyArray_ISNOTSWAPPED(a)):
            _validate.check_norm_arrays(grads)
            raise TypeError(f"grads of one call must share one dtype; grads[{k}] is {a.dtype}")
    table = <adamcore_array *>PyMem_Malloc(max(n, 1) * sizeof(adamcore_array))
    try:
        if table == NULL:
            raise MemoryError()
        for k in range(n):
            a = <cnp.ndarray>grads[k]
            table[k].data = cnp.PyArray_DATA(a)
            table[k].n = cnp.PyArray_SIZE(a)
        n_blocks = adamcore_norm_blocks(table, n)
        work = <double *>PyMem_Malloc(max(n_blocks, 1) * sizeof(double))
        if work == NULL:
            raise MemoryError()
        with nogil:
            if typenum == cnp.NPY_FLOAT64:
                status = adamcore_sumsq_f64(table, n, work, nt, &total, &nonfinite)
            else:
                status = adamcore_sumsq_f32(table, n, work, nt, &total, &nonfinite)
        if status != ADAMCORE_OK:
            raise RuntimeError(f"adamcore internal error: the norm kernel returned {status}")
        return total, bool(nonfinite)
    finally:
        PyMem_Free(table)
        PyMem_Free(work)


# ---- the roofline probe ----------------------------------------------------

def stream_probe(p, g, m, v, int n_threads):
    """One pass of csrc/stream_probe.c (p += g; m += g; v += g) over four
    distinct, writeable, C-contiguous float32 arrays of one length; the GIL is
    released. Timed by adamcore.bench to find the bound an Adam step's memory
    traffic sets; checked at C speed, so that small sizes time the pass."""
    cdef uintptr_t starts[4]
    cdef uintptr_t ends[4]
    cdef uintptr_t tmp[4]
    cdef uintptr_t data[4]
    cdef cnp.ndarray first
    cdef int i, status
    arrays = (p, g, m, v)
    if not cnp.PyArray_Check(p) or cnp.PyArray_TYPE(<cnp.ndarray>p) != cnp.NPY_FLOAT32:
        raise ValueError("stream_probe needs writeable C-contiguous float32 arrays")
    first = <cnp.ndarray>p
    for i in range(4):
        if not (cnp.PyArray_Check(arrays[i]) and cnp.PyArray_NDIM(<cnp.ndarray>arrays[i]) == 1
                and cnp.PyArray_NDIM(first) == 1
                and _array_ok(arrays[i], first, cnp.NPY_ARRAY_C_CONTIGUOUS, True,
                              &starts[i], &ends[i])):
            raise ValueError("stream_probe needs writeable C-contiguous 1-D float32 arrays "
                             "of one length")
    if n_threads < 1:
        raise ValueError(f"n_threads must be >= 1, got {n_threads}")
    memcpy(data, starts, sizeof(data))  # _disjoint sorts starts in place
    if not _disjoint(starts, ends, tmp, 4):
        _validate.check_no_overlap(list(zip("pgmv", arrays)))
    with nogil:
        status = adamcore_stream_probe_f32(<float *>data[0], <const float *>data[1],
                                           <float *>data[2], <float *>data[3],
                                           cnp.PyArray_SIZE(first), n_threads)
    if status != ADAMCORE_OK:
        raise RuntimeError(f"adamcore internal error: stream probe returned {status}")
