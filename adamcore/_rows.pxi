# Row gradients (csrc/rows.c): coalescing, the row step, the coalesced norm.
# adamcore.rows checks a RowGrad against its param first and words every
# error; these checks only keep a wrong call from reaching C.

cdef cnp.ndarray _c_array(object a, str name, int typenum, bint writeable):
    if not (cnp.PyArray_Check(a) and cnp.PyArray_TYPE(<cnp.ndarray>a) == typenum
            and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a)
            and cnp.PyArray_ISALIGNED(<cnp.ndarray>a) and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>a)
            and (not writeable or cnp.PyArray_ISWRITEABLE(<cnp.ndarray>a))):
        raise TypeError(f"{name} must be a C-contiguous{' writeable' if writeable else ''} "
                        f"{np.dtype(cnp.PyArray_TypeObjectFromType(typenum))} array")
    return <cnp.ndarray>a


cdef adamcore_row_grad _row_grad(object rows, object coalesced, int typenum) except *:
    """The C view of rows in their coalesced order (adamcore.rowgrad.Coalesced)."""
    cdef adamcore_row_grad g
    if type(coalesced) is not Coalesced:
        raise TypeError(f"coalesced must be an adamcore.rowgrad.Coalesced, got "
                        f"{type(coalesced).__name__}")
    cdef cnp.ndarray r = _c_array(rows, "rows", typenum, False)
    cdef cnp.ndarray o = _c_array(coalesced.order, "order", cnp.NPY_INT64, False)
    cdef cnp.ndarray s = _c_array(coalesced.start, "start", cnp.NPY_INT64, False)
    cdef cnp.ndarray u = _c_array(coalesced.unique, "unique", cnp.NPY_INT64, False)
    cdef Py_ssize_t k = cnp.PyArray_DIM(r, 0) if cnp.PyArray_NDIM(r) == 2 else -1
    cdef const int64_t *op
    cdef Py_ssize_t i
    if (k < 0 or cnp.PyArray_SIZE(o) != k or cnp.PyArray_SIZE(s) != cnp.PyArray_SIZE(u) + 1
            or cnp.PyArray_SIZE(u) > k):
        raise ValueError("rows and their Coalesced order do not match in length")
    op = <const int64_t *>cnp.PyArray_DATA(o)
    for i in range(k):  # rows.c reads rows[order[i]] unchecked
        if not 0 <= op[i] < k:
            raise ValueError("order holds a position outside rows")
    g.rows, g.order = cnp.PyArray_DATA(r), op
    g.start, g.unique = <const int64_t *>cnp.PyArray_DATA(s), <const int64_t *>cnp.PyArray_DATA(u)
    g.n_unique, g.width = cnp.PyArray_SIZE(u), cnp.PyArray_DIM(r, 1)
    if (<const int64_t *>g.start)[0] != 0 or g.start[g.n_unique] != k:
        raise ValueError("start must run from 0 to len(order)")
    return g


def rows_coalesce(indices, int64_t n_rows):
    """The Coalesced order of ``indices`` (1-D int32 or int64), as
    adamcore.rows.coalesce; ValueError if an index is outside [0, n_rows)."""
    cdef cnp.ndarray ix
    cdef int index_bytes, status
    cdef int64_t k, n_unique = 0
    if cnp.PyArray_Check(indices) and cnp.PyArray_TYPE(<cnp.ndarray>indices) == cnp.NPY_INT32:
        ix, index_bytes = _c_array(indices, "indices", cnp.NPY_INT32, False), 4
    else:
        ix, index_bytes = _c_array(indices, "indices", cnp.NPY_INT64, False), 8
    k = cnp.PyArray_SIZE(ix)
    order = np.empty(k, np.int64)
    work = np.empty(k, np.int64)
    start = np.empty(k + 1, np.int64)
    unique = np.empty(k, np.int64)
    cdef int64_t *w = <int64_t *>cnp.PyArray_DATA(<cnp.ndarray>work)
    cdef int64_t *o = <int64_t *>cnp.PyArray_DATA(<cnp.ndarray>order)
    cdef int64_t *s = <int64_t *>cnp.PyArray_DATA(<cnp.ndarray>start)
    cdef int64_t *u = <int64_t *>cnp.PyArray_DATA(<cnp.ndarray>unique)
    cdef const void *data = cnp.PyArray_DATA(ix)
    with nogil:
        status = adamcore_rows_coalesce(data, index_bytes, k, n_rows, w, o, s, u, &n_unique)
    if status != ADAMCORE_OK:
        raise ValueError(f"an index is outside [0, {n_rows})")
    return Coalesced(order, start[:n_unique + 1], unique[:n_unique])


def rows_step(int mode, param, exp_avg, exp_avg_sq, max_exp_avg_sq, rows, coalesced, hyper,
              int64_t step, double grad_scale, n_threads):
    """One row step of a 2-D table (csrc/adamcore.h: adamcore_adam_rows_*)
    with ``hyper`` an adamcore.kinds.AdamHyper; adamcore.rows.reference_step
    is the same in NumPy."""
    cdef _KindC kc = _KINDS_C[kinds.ADAM]
    cdef _Hyper h
    cdef adamcore_table t
    cdef adamcore_row_grad g
    cdef int typenum, status, nt = resolve_n_threads(n_threads)
    cdef cnp.ndarray p
    if not cnp.PyArray_Check(param):
        raise TypeError("param must be a numpy.ndarray")
    typenum = cnp.PyArray_TYPE(<cnp.ndarray>param)
    if typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64:
        raise TypeError("param must be float32 or float64")
    p = _c_array(param, "param", typenum, True)
    if cnp.PyArray_NDIM(p) != 2:
        raise ValueError("param must be 2-D")
    kc.fill(hyper, &h, None)
    if step < 1:
        raise ValueError("step must be >= 1")
    _set_step(ADAMCORE_ADAM, &h, step, grad_scale, False)
    g = _row_grad(rows, coalesced, typenum)
    if g.width != cnp.PyArray_DIM(p, 1):
        raise ValueError("rows and param differ in width")
    t.param, t.n_rows = cnp.PyArray_DATA(p), cnp.PyArray_DIM(p, 0)
    for k, a in enumerate((exp_avg, exp_avg_sq, max_exp_avg_sq)):
        if a is None:
            t.state[k] = NULL
            continue
        s = _c_array(a, "state", typenum, True)
        if cnp.PyArray_SIZE(<cnp.ndarray>s) != cnp.PyArray_SIZE(p):
            raise ValueError("a state array differs from param in size")
        t.state[k] = cnp.PyArray_DATA(<cnp.ndarray>s)
    with nogil:
        if typenum == cnp.NPY_FLOAT64:
            status = adamcore_adam_rows_f64(&t, &g, &h.adam, mode, nt)
        else:
            status = adamcore_adam_rows_f32(&t, &g, &h.adam, mode, nt)
    if status != ADAMCORE_OK:
        raise ValueError(f"the row step refused its arguments (status {status}): a missing state "
                         "array, an index outside the table, or SparseAdam with weight decay "
                         "or amsgrad")


def rows_sumsq(rows, coalesced, n_threads=None):
    """(sum of squares, any NaN or inf) of the coalesced gradient, as
    adamcore.rows.sumsq: the same bits for any thread count."""
    cdef int nt = resolve_n_threads(n_threads), status, nonfinite = 0
    cdef int typenum = cnp.PyArray_TYPE(<cnp.ndarray>rows) if cnp.PyArray_Check(rows) else -1
    cdef double total = 0.0
    cdef adamcore_row_grad g
    if typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64:
        raise TypeError("rows must be a float32 or float64 array")
    g = _row_grad(rows, coalesced, typenum)
    work = np.empty(max(adamcore_rows_norm_blocks(&g), 1), np.float64)
    cdef double *w = <double *>cnp.PyArray_DATA(<cnp.ndarray>work)
    with nogil:
        if typenum == cnp.NPY_FLOAT64:
            status = adamcore_rows_sumsq_f64(&g, w, nt, &total, &nonfinite)
        else:
            status = adamcore_rows_sumsq_f32(&g, w, nt, &total, &nonfinite)
    if status != ADAMCORE_OK:
        raise RuntimeError(f"adamcore internal error: the row norm kernel returned {status}")
    return total, bool(nonfinite)


def has_row_grads(list grads):
    """Whether any of ``grads`` is an adamcore.RowGrad, at C speed."""
    cdef Py_ssize_t i
    for i in range(len(grads)):
        if type(grads[i]) is RowGrad:
            return True
    return False
