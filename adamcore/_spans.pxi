# The overlap check: no two buffers of a step share a byte. Byte spans are
# sorted (a radix sort of addresses) and compared; a plan keeps its sorted
# spans between runs (_SpanCache), as its params and state stay put.

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
    keeps the last run's (_SpanCache)."""
    cdef uintptr_t *raw  # n starts, then n ends, in row order
    cdef uintptr_t *starts
    cdef uintptr_t *ends
    cdef Py_ssize_t n, k
    cdef object disjoint_from  # grads' spans: the state spans they were checked against

    def __cinit__(self):
        self.n = -1  # matches nothing until _new_spans fills it

    def __dealloc__(self):
        PyMem_Free(self.raw)

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


cdef class _SpanCache:
    """A plan's kept spans: those of its params and state at the last run,
    and the last grads' spans found disjoint from exactly those. Replaced,
    never changed, so concurrent runs may share them."""
    cdef _Spans state
    cdef _Spans grads


cdef bint _step_disjoint(uintptr_t *starts, uintptr_t *ends, Py_ssize_t n,
                         uintptr_t *grad_starts, uintptr_t *grad_ends, Py_ssize_t n_grads,
                         uintptr_t *tmp, _SpanCache cache) except -1:
    """No two buffers of a step overlap: params and state (``starts``,
    ``ends``) and grads. ``cache`` is None (everything is sorted in place)
    or a plan's. A plan's params and state stay put, so their spans are
    sorted again only when they moved; its grads often land at the same
    addresses step after step (the allocator reuses the last step's blocks),
    and spans already found disjoint from the same state spans need no sort
    at all."""
    cdef _Spans kept, kept_grads
    cdef Py_ssize_t k
    cdef bint ok
    if cache is None:
        k = _sorted_spans(starts, ends, tmp, n)
        return _merged_disjoint(starts, ends, k, grad_starts, grad_ends,
                                _sorted_spans(grad_starts, grad_ends, tmp, n_grads))
    kept = cache.state
    if kept is None or not kept.same(starts, ends, n):
        kept = _new_spans(starts, ends, n, tmp)
        cache.state = kept
    kept_grads = cache.grads
    if (kept_grads is not None and kept_grads.disjoint_from is kept
            and kept_grads.same(grad_starts, grad_ends, n_grads)):
        return True
    kept_grads = _new_spans(grad_starts, grad_ends, n_grads, tmp)
    ok = _merged_disjoint(kept.starts, kept.ends, kept.k, kept_grads.starts, kept_grads.ends,
                          kept_grads.k)
    if ok:
        kept_grads.disjoint_from = kept
        cache.grads = kept_grads
    return ok
