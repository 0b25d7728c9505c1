# Gradient norms (csrc/grad_norm.c).

def grad_sumsq(list grads, n_threads=None):
    """(sum of squares, any element NaN or inf) of arrays of one dtype, in one
    GIL-free pass (csrc/grad_norm.c): the same bits for any thread count."""
    return _norm_pass(grads, n_threads, False)[:2]


def grad_block_sums(list grads, n_threads=None):
    """(block sums, any element NaN or inf): the per-block sums of squares
    the norm adds in order (float64, one per ADAMCORE_NORM_BLOCK elements of
    each array), for a norm whose blocks lie in several processes
    (adamcore.distributed folds them in block order)."""
    _, nonfinite, sums = _norm_pass(grads, n_threads, True)
    return sums, nonfinite


cdef tuple _norm_pass(list grads, object n_threads, bint keep_sums):
    cdef Py_ssize_t k, n = len(grads)
    cdef int nt = resolve_n_threads(n_threads), typenum = cnp.NPY_FLOAT32, status, flags
    cdef int nonfinite = 0
    cdef double total = 0.0
    cdef cnp.ndarray a
    cdef adamcore_array *table = NULL
    cdef double *work = NULL
    cdef int64_t n_blocks
    cdef object sums = None
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
        if keep_sums:
            sums = np.empty(max(n_blocks, 1), np.float64)
            work = <double *>cnp.PyArray_DATA(sums)
        else:
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
        return total, bool(nonfinite), sums[:n_blocks] if keep_sums else None
    finally:
        PyMem_Free(table)
        if not keep_sums:
            PyMem_Free(work)
