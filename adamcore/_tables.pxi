# The tables of one step: each tensor checked at C speed against its param
# (type, dtype, shape, layout, alignment, writeability) as its row of the
# kernel's table is filled, the byte spans of every buffer recorded for the
# overlap check; then the kernel calls, one per row or bucket.

cdef bint _array_ok(object obj, cnp.ndarray param, int order_flag, bint writeable,
                    uintptr_t *start, uintptr_t *end, int typenum=-1) noexcept:
    """obj matches param in type, shape and layout, and in dtype (or has
    ``typenum``, for low-precision state); record its byte span."""
    cdef cnp.ndarray a
    cdef int flags, k
    cdef cnp.npy_intp dim, nbytes
    if not cnp.PyArray_Check(obj):
        return False
    a = <cnp.ndarray>obj
    flags = cnp.PyArray_FLAGS(a)
    if typenum < 0:
        typenum = cnp.PyArray_TYPE(param)
    if cnp.PyArray_TYPE(a) != typenum or cnp.PyArray_NDIM(a) != cnp.PyArray_NDIM(param):
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


cdef enum:
    _STACK_WORDS = 1024  # 8 KiB: a step this small needs no heap (a few tensors)
    _STACK_BYTES = 8 * _STACK_WORDS
    _SPANS = 7           # buffers per tensor besides its grad: param, 3 states, 3 absmax
    _KEYS = 3 * _SPANS + 2


cdef int _BF16 = -1  # ml_dtypes.bfloat16's type number, where it is installed
try:
    _BF16 = qstate.bfloat16().num
except ImportError:
    pass


cdef inline uintptr_t *_grad_starts(_Work *w) noexcept:
    return w.keys + 2 * _SPANS * w.n


cdef inline uintptr_t *_grad_ends(_Work *w) noexcept:
    return w.keys + (2 * _SPANS + 1) * w.n


cdef inline uintptr_t *_sort_space(_Work *w) noexcept:
    return w.keys + (2 * _SPANS + 2) * w.n


cdef struct _Work:
    # One step's tables, carved from one block: ``table`` (one row per
    # tensor) and ``keys`` (_KEYS per tensor: the spans' starts [0, 7n) and
    # ends [7n, 14n) of params, states and absmax arrays, the grads' starts
    # (_grad_starts) and ends, the sort's work space (_sort_space));
    # ``hypers``, ``counts`` and ``typenums``, one per call.
    adamcore_tensor *table
    uintptr_t *keys
    _Hyper *hypers
    Py_ssize_t *counts
    int *typenums
    Py_ssize_t n  # tensors the tables have room for
    void *heap    # the block when it is not the caller's stack buffer


cdef int _work_init(_Work *w, Py_ssize_t n_tensors, Py_ssize_t n_calls, char *stack) except -1:
    """Carve ``w`` from ``stack`` (_STACK_BYTES long) when it fits, else from
    one heap block (freed by _work_free). Every size is a multiple of 8 but
    the last, so every part stays aligned."""
    cdef size_t a = max(n_tensors, 1) * sizeof(adamcore_tensor)
    cdef size_t b = a + max(_KEYS * n_tensors, 1) * sizeof(uintptr_t)
    cdef size_t c = b + max(n_calls, 1) * sizeof(_Hyper)
    cdef size_t d = c + max(n_calls, 1) * sizeof(Py_ssize_t)
    cdef size_t total = d + max(n_calls, 1) * sizeof(int)
    cdef char *block = stack
    w.heap = NULL
    if total > _STACK_BYTES:
        w.heap = PyMem_Malloc(total)
        if w.heap == NULL:
            raise MemoryError()
        block = <char *>w.heap
    w.table = <adamcore_tensor *>block
    w.keys = <uintptr_t *>(block + a)
    w.hypers = <_Hyper *>(block + b)
    w.counts = <Py_ssize_t *>(block + c)
    w.typenums = <int *>(block + d)
    w.n = n_tensors
    return 0


cdef inline void _work_free(_Work *w) noexcept:
    PyMem_Free(w.heap)


cdef bint _tensor_ok(object param, object grad, object s0, object s1, object s2, int slots,
                     _Work *w, Py_ssize_t row, Py_ssize_t *n_spans, int *typenum,
                     int fmt=0, object scales=None, uint64_t seed=0) noexcept:
    """Check one tensor (``slots``: bit k, state slot k is used) and fill
    row ``row`` of the table; its param and state spans are appended at
    keys[n_spans], its grad's go to the grads' part at ``row``. ``typenum``
    is the call's dtype (-1: set it from this param). ``fmt`` is the state's
    format (adamcore.qstate), ``scales`` int8 state's absmax arrays (a
    tuple of 3, None where a slot is unused) and ``seed`` bfloat16 state's
    stream."""
    cdef cnp.ndarray p
    cdef int order_flag, flags, j, state_type
    cdef Py_ssize_t n0
    cdef adamcore_tensor *t = &w.table[row]
    cdef uintptr_t *starts = w.keys
    cdef uintptr_t *ends = w.keys + _SPANS * w.n
    if not cnp.PyArray_Check(param):
        return False
    p = <cnp.ndarray>param
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
            and _array_ok(grad, p, order_flag, False, &_grad_starts(w)[row],
                          &_grad_ends(w)[row])):
        return False
    t.param = <void *>starts[n0]
    t.grad = <const void *>_grad_starts(w)[row]
    t.n = cnp.PyArray_SIZE(p)
    t.seed = seed
    n_spans[0] += 1
    state_type = -2  # refused: an unknown format, or bfloat16 without ml_dtypes
    if fmt == 0:
        state_type = -1
    elif fmt == 1 and _BF16 >= 0:
        state_type = _BF16
    elif fmt == 2:
        state_type = cnp.NPY_UINT8
    if state_type == -2 or (fmt == 2) != (scales is not None) or (
            scales is not None and (type(scales) is not tuple or len(<tuple>scales) != 3)):
        return False
    for j in range(3):
        t.state[j] = NULL
        t.absmax[j] = NULL
        if (slots >> j) & 1:
            n0 = n_spans[0]
            if not _array_ok(s0 if j == 0 else (s1 if j == 1 else s2), p, order_flag, True,
                             &starts[n0], &ends[n0], state_type):
                return False
            t.state[j] = <void *>starts[n0]
            n_spans[0] += 1
            if fmt == 2:
                n0 = n_spans[0]
                if not _absmax_ok((<tuple>scales)[j], (t.n + 255) // 256, &starts[n0], &ends[n0]):
                    return False
                t.absmax[j] = <float *>starts[n0]
                n_spans[0] += 1
    return True


cdef bint _absmax_ok(object obj, Py_ssize_t n_blocks, uintptr_t *start, uintptr_t *end) noexcept:
    """obj is int8 state's absmax array: float32, n_blocks long, contiguous,
    aligned, writeable; record its byte span."""
    cdef cnp.ndarray a
    if not cnp.PyArray_Check(obj):
        return False
    a = <cnp.ndarray>obj
    if not (cnp.PyArray_TYPE(a) == cnp.NPY_FLOAT32 and cnp.PyArray_NDIM(a) == 1
            and cnp.PyArray_DIM(a, 0) == n_blocks and cnp.PyArray_IS_C_CONTIGUOUS(a)
            and cnp.PyArray_ISALIGNED(a) and cnp.PyArray_ISWRITEABLE(a)
            and cnp.PyArray_ISNOTSWAPPED(a)):
        return False
    start[0] = <uintptr_t>cnp.PyArray_DATA(a)
    end[0] = start[0] + <uintptr_t>(4 * n_blocks)
    return True


cdef inline bint _scale_ok(object scale, double *out) noexcept:
    """A plain float or int clipping scale, finite and >= 0 (NaN, which
    clipping may give, and other types go to adamcore._validate)."""
    return _plain_real(scale, out) and isfinite(out[0]) and out[0] >= 0.0


cdef int _run_calls(_Work *w, Py_ssize_t n_calls, int *codes, int code, int nt) except -1:
    """The kernel calls of a checked step: call c steps counts[c] rows of
    kind codes[c] (or ``code``, for every call, when codes is NULL)."""
    cdef Py_ssize_t c, row = 0
    cdef int status
    for c in range(n_calls):
        if w.counts[c]:
            with nogil:
                status = _call(code if codes == NULL else codes[c], w.typenums[c], w.table + row, w.counts[c],
                               &w.hypers[c], nt)
            if status != ADAMCORE_OK:
                raise RuntimeError(f"adamcore internal error: the C kernel returned {status}")
        row += w.counts[c]
    return 0
