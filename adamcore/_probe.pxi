# The roofline probe (csrc/stream_probe.c), timed by adamcore.bench.

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
