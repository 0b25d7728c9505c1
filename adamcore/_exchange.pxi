# The ordered sum of adamcore.distributed's reduce-scatter (csrc/rank_sum.c).

def rank_sum(cnp.ndarray recv, cnp.ndarray out, double scale, n_threads=None):
    """out[:] = (recv[0, :n] + recv[1, :n] + ... in row order) * scale, with
    n = out.size: the slices one Alltoall brought in, one row per rank, summed
    in rank order (the same bits for any thread count). ``recv`` is a
    C-contiguous 2-D float32 or float64 array, ``out`` a writeable contiguous
    1-D array of its dtype with at most recv.shape[1] elements, apart from it."""
    cdef int nt = resolve_n_threads(n_threads), status, typenum = cnp.PyArray_TYPE(recv)
    cdef int64_t n = cnp.PyArray_SIZE(out)
    cdef void *src = cnp.PyArray_DATA(recv)
    cdef void *dst = cnp.PyArray_DATA(out)
    if (typenum != cnp.NPY_FLOAT32 and typenum != cnp.NPY_FLOAT64) or recv.ndim != 2 \
            or not recv.flags.c_contiguous or not recv.flags.aligned:
        raise TypeError("recv must be a C-contiguous, aligned 2-D float32 or float64 array, "
                        f"got {recv.dtype} of shape {(<object>recv).shape}")
    if cnp.PyArray_TYPE(out) != typenum or out.ndim != 1 or not out.flags.c_contiguous \
            or not out.flags.writeable or not out.flags.aligned:
        raise TypeError(f"out must be a writeable contiguous 1-D {recv.dtype} array, "
                        f"got {out.dtype} of shape {(<object>out).shape}")
    if n > recv.shape[1] or recv.shape[0] < 1:
        raise ValueError(f"out has {n} elements; recv's rows have {recv.shape[1]}")
    if np.shares_memory(recv, out):
        raise ValueError("out overlaps recv")
    with nogil:
        if typenum == cnp.NPY_FLOAT64:
            status = adamcore_rank_sum_f64(<const double *>src, recv.shape[0], recv.shape[1],
                                           n, scale, <double *>dst, nt)
        else:
            status = adamcore_rank_sum_f32(<const float *>src, recv.shape[0], recv.shape[1],
                                           n, <float>scale, <float *>dst, nt)
    if status != ADAMCORE_OK:
        raise RuntimeError(f"adamcore internal error: the rank sum returned {status}")
