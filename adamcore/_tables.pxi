# The tables of one step: each tensor checked at C speed against its param
# (type, dtype, shape, layout, alignment, writeability) as its row of the
# kernel's table is filled, the byte spans of every buffer recorded for the
# overlap check; then the kernel calls, one per row or bucket.

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


cdef enum:
    _STACK_WORDS = 512  # 4 KiB: a step this small needs no heap (a few tensors)
    _STACK_BYTES = 8 * _STACK_WORDS


cdef struct _Work:
    # One step's tables, carved from one block: ``table`` (one row per
    # tensor) and ``keys`` (14 per tensor: the param and state spans' starts
    # [0, 4n) and ends [4n, 8n), the grads' starts [8n, 9n) and ends
    # [9n, 10n), the sort's work space [10n, 14n)); ``hypers``, ``counts``
    # and ``typenums``, one per call.
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
    cdef size_t b = a + max(14 * n_tensors, 1) * sizeof(uintptr_t)
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
                     _Work *w, Py_ssize_t row, Py_ssize_t *n_spans, int *typenum) noexcept:
    """Check one tensor (``slots``: bit k, state slot k is used) and fill
    row ``row`` of the table; its param and state spans are appended at
    keys[n_spans], its grad's go to the grads' part at ``row``. ``typenum``
    is the call's dtype (-1: set it from this param)."""
    cdef cnp.ndarray p
    cdef int order_flag, flags, j
    cdef Py_ssize_t n0
    cdef adamcore_tensor *t = &w.table[row]
    cdef uintptr_t *starts = w.keys
    cdef uintptr_t *ends = w.keys + 4 * w.n
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
            and _array_ok(grad, p, order_flag, False, &w.keys[8 * w.n + row],
                          &w.keys[9 * w.n + row])):
        return False
    t.param = <void *>starts[n0]
    t.grad = <const void *>w.keys[8 * w.n + row]
    t.n = cnp.PyArray_SIZE(p)
    n_spans[0] += 1
    for j in range(3):
        t.state[j] = NULL
        if (slots >> j) & 1:
            n0 = n_spans[0]
            if not _array_ok(s0 if j == 0 else (s1 if j == 1 else s2), p, order_flag, True,
                             &starts[n0], &ends[n0]):
                return False
            t.state[j] = <void *>starts[n0]
            n_spans[0] += 1
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
