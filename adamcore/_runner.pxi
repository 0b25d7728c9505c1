# The step runner: one for every kind. Both entry points, ``run`` (a plan,
# adamcore.plan.Plan) and ``step_buckets`` (explicit buckets), check every
# tensor of the step at C speed, then the overlap of all its buffers, and
# only then call the kernels, one per row or bucket, with the GIL released.
# When a check fails, adamcore._validate words the error over the same
# step's buckets, so this module and the NumPy reference refuse alike.

# ---- plans -------------------------------------------------------------------

cdef enum:
    _ENTRY = 6  # items per entry of _Compiled.entries


cdef class _Compiled:
    """A plan (adamcore.plan.Plan) as the binding runs it, kept in
    ``plan.compiled``: its rows flattened (per entry: param index, param and
    the slots' state arrays), per group the C hyper struct and the slots it
    uses, with the option values it was read from (options are re-read only
    when one of them is no longer the same object), and the kept spans.
    An entry is _ENTRY items: param, the 3 slots' arrays, and for
    low-precision state the absmax arrays (a tuple, int8) and the seed."""
    cdef _KindC kc
    cdef list groups, entries, snaps, state_dtypes
    cdef object rows  # the plan's rows this was built from (replaced, never changed)
    cdef Py_ssize_t n_params, n_rows, n_groups, n_entries
    cdef int64_t[::1] index, row_start, row_group, row_slots, row_fmt, outside
    cdef _Hyper *hypers
    cdef int *group_slots
    cdef _SpanCache spans

    def __cinit__(self):
        self.hypers, self.group_slots = NULL, NULL

    def __init__(self, plan):
        self.kc = _KINDS_C[plan.kind]
        self.groups, self.rows = plan.groups, plan.rows
        self.state_dtypes = list(plan.state_dtypes)
        self.n_params, self.n_rows, self.n_groups = plan.n_params, len(plan.rows), plan.n_groups
        starts, index, self.entries = [0], [], []
        for row in plan.rows:  # the indices below are used unchecked: check them here
            if not (0 <= row.group < self.n_groups and type(row.states) is tuple
                    and len(row.states) == 3 and len(row.params) == len(row.indices)
                    and all(s is None or len(s) == len(row.params) for s in row.states)
                    and all(0 <= i < self.n_params for i in row.indices)
                    and row.fmt in (0, 1, 2) and (row.fmt == 0 or self.kc.code == ADAMCORE_ADAM)
                    and (row.fmt == 2) == (row.scales is not None)
                    and (row.fmt == 1) == (row.seeds is not None)):
                raise ValueError("a plan's rows do not fit its groups and params")
            index += row.indices
            for k, p in enumerate(row.params):
                self.entries.append(p)
                for s in row.states:
                    self.entries.append(None if s is None else s[k])
                self.entries.append(None if row.scales is None else tuple(
                    None if s is None else s[k] for s in row.scales))
                self.entries.append(0 if row.seeds is None else row.seeds[k])
            starts.append(len(index))
        if not all(0 <= i < self.n_params for i in plan.outside):
            raise ValueError("a plan's outside params do not fit its params")
        self.n_entries = len(index)
        self.index = np.array(index, np.int64)
        self.row_start = np.array(starts, np.int64)
        self.row_group = np.array([row.group for row in plan.rows], np.int64)
        self.row_slots = np.array([row.slots for row in plan.rows], np.int64)
        self.row_fmt = np.array([row.fmt for row in plan.rows], np.int64)
        self.outside = np.array(plan.outside, np.int64)
        self.hypers = <_Hyper *>PyMem_Malloc(max(self.n_groups, 1) * sizeof(_Hyper))
        self.group_slots = <int *>PyMem_Malloc(max(self.n_groups, 1) * sizeof(int))
        if self.hypers == NULL or self.group_slots == NULL:
            raise MemoryError()
        self.snaps = [None] * self.n_groups
        self.spans = _SpanCache()

    def __dealloc__(self):
        PyMem_Free(self.hypers)
        PyMem_Free(self.group_slots)

    cdef int refresh(self, Py_ssize_t g) except -1:
        """Group g's hyper struct, re-read when an option changed."""
        cdef Py_ssize_t j
        cdef tuple snap = self.snaps[g], keys = self.kc.group_keys
        group = self.groups[g]
        if snap is not None and type(group) is dict:
            for j in range(len(keys)):
                if (<dict>group).get(keys[j]) is not snap[j]:
                    break
            else:
                return 0
        self.snaps[g] = None
        values = tuple(group[key] for key in keys)
        # The hyper is read from the values kept, never from the group again:
        # reading an option may run Python code that changes the group.
        hyper = self.kc.kind.hyper_from(dict(zip(keys, values)))
        self.kc.fill(hyper, &self.hypers[g], self.kc.kind.options)
        self.group_slots[g] = self.kc.slots_of(&self.hypers[g])
        if all(_immutable(v) for v in values):  # else: read again at every run
            self.snaps[g] = values
        return 0


cdef bint _immutable(object v):
    """A value whose identity pins its value: a plain number, bool or str,
    or a tuple of plain numbers (betas)."""
    if type(v) is float or type(v) is int or type(v) is bool or type(v) is str:
        return True
    return type(v) is tuple and all(type(x) is float or type(x) is int for x in <tuple>v)


cdef void *_row_array(object a, int typenum, Py_ssize_t n) except NULL:
    """The data of a plan's per-row array (``steps``, ``first``)."""
    if not (cnp.PyArray_Check(a) and cnp.PyArray_TYPE(<cnp.ndarray>a) == typenum
            and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a)
            and cnp.PyArray_ISWRITEABLE(<cnp.ndarray>a) and cnp.PyArray_SIZE(<cnp.ndarray>a) == n):
        raise TypeError("a plan's steps and first must be writeable int64 and uint8 arrays, "
                        "one item per row")
    return cnp.PyArray_DATA(<cnp.ndarray>a)


def run(plan, grads, scale, n_threads=None):
    """Step ``plan`` (adamcore.plan.Plan) with ``grads`` (a list, one per
    param, None to skip) scaled by ``scale``, under the plan's contract
    (adamcore.plan); False, with nothing done, when the plan does not cover
    this step (row gradients among the grads included). adamcore.reference.run
    is the same in NumPy."""
    cdef _Compiled c = plan.compiled if type(plan.compiled) is _Compiled else None
    cdef object steps_array, first_array  # held: the kernels run without the GIL
    cdef Py_ssize_t g, r, e, row = 0, begin, n_spans = 0
    cdef int nt, typenum
    cdef double d_scale
    cdef _Work w
    cdef double stack[_STACK_WORDS]  # 8-byte aligned, for the tables
    cdef int64_t *steps
    cdef uint8_t *first
    cdef bint ok = True
    if c is None or c.rows is not plan.rows:
        c = _Compiled(plan)
        plan.compiled = c
    # In the reference's order: grads, scale, n_threads, hyperparameters, tensors.
    if type(grads) is not list or len(<list>grads) != c.n_params:
        raise TypeError(f"grads must be a list of {c.n_params} arrays or None")
    if not _scale_ok(scale, &d_scale):
        _validate.check_grad_scale(scale)
        d_scale = _as_double(scale)
    nt = resolve_n_threads(n_threads)
    if len(plan.groups) != c.n_groups:
        raise ValueError(f"param_groups changed from {c.n_groups} to {len(plan.groups)} groups; "
                         "add groups with add_param_group")
    for g in range(c.n_groups):
        c.refresh(g)
        if (<dict>plan.groups[g]).get("state_dtype") != c.state_dtypes[g]:
            return False
    if len(<list>grads) != c.n_params:  # changed by Python code run since (a __float__)
        raise TypeError(f"grads must be a list of {c.n_params} arrays or None")
    for r in range(c.n_rows):
        if c.group_slots[c.row_group[r]] != c.row_slots[r]:
            return False
    for e in range(c.outside.shape[0]):
        if (<list>grads)[c.outside[e]] is not None:
            return False
    steps_array, first_array = plan.steps, plan.first
    steps = <int64_t *>_row_array(steps_array, cnp.NPY_INT64, c.n_rows)
    first = <uint8_t *>_row_array(first_array, cnp.NPY_UINT8, c.n_rows)
    _work_init(&w, c.n_entries, c.n_rows, <char *>stack)
    try:
        for r in range(c.n_rows):
            typenum, begin = -1, row
            for e in range(c.row_start[r], c.row_start[r + 1]):
                grad = (<list>grads)[c.index[e]]
                if grad is None:
                    continue
                if not _tensor_ok(c.entries[_ENTRY * e], grad, c.entries[_ENTRY * e + 1],
                                  c.entries[_ENTRY * e + 2], c.entries[_ENTRY * e + 3],
                                  c.row_slots[r], &w, row, &n_spans, &typenum, c.row_fmt[r],
                                  c.entries[_ENTRY * e + 4], c.entries[_ENTRY * e + 5]):
                    ok = False
                    break
                row += 1
            if not ok or (row > begin and steps[r] == INT64_MAX):  # no next count
                ok = False
                break
            w.counts[r], w.typenums[r] = row - begin, typenum
            if row > begin:
                w.hypers[r] = c.hypers[c.row_group[r]]
                _set_step(c.kc.code, &w.hypers[r], steps[r] + 1, d_scale, first[r] != 0)
                if c.kc.code == ADAMCORE_ADAM:
                    w.hypers[r].adam.state_format = c.row_fmt[r]
        ok = ok and _step_disjoint(w.keys, w.keys + _SPANS * w.n, n_spans, _grad_starts(&w),
                                   _grad_ends(&w), row, _sort_space(&w), c.spans)
        if not ok:
            if has_row_grads(grads):  # stepped by adamcore.rows, not a run
                return False
            check_buckets(plan.buckets(grads, scale), n_threads)
            raise RuntimeError("adamcore internal error: the C checks refused a step that "
                               "adamcore._validate accepts")
        _run_calls(&w, c.n_rows, NULL, c.kc.code, nt)
        partial = None
        for r in range(c.n_rows):
            if w.counts[r] == c.row_start[r + 1] - c.row_start[r]:
                steps[r] += 1
                first[r] = 0
            elif w.counts[r]:
                if partial is None:
                    partial = []
                partial.append(r)
    finally:
        _work_free(&w)
    if partial is not None:
        plan.split(partial, grads)
    return True


# ---- explicit buckets ----------------------------------------------------------

cdef object _scales_of(tuple scales, Py_ssize_t k):
    """Tensor k's absmax arrays from a bucket's scales (per slot a list or None)."""
    return tuple(None if s is None or type(s) is not list or len(<list>s) <= k
                 else (<list>s)[k] for s in scales)


def step_buckets(buckets, n_threads=None):
    """Step a list of buckets (adamcore.plan.Bucket): validate every one,
    then run each as one GIL-free kernel call. adamcore.reference.step_buckets
    is the same in NumPy."""
    cdef Py_ssize_t n_tensors = 0, n_spans = 0, b, k, n, row = 0
    cdef int nt, typenum, slots
    cdef _Work w
    cdef double stack[_STACK_WORDS]
    cdef _KindC kc
    cdef int64_t step
    cdef bint is_first
    cdef double d_scale
    cdef int codes_stack[16]
    cdef int *codes = codes_stack
    cdef bint ok = True
    if type(buckets) is not list:
        check_buckets(buckets, n_threads)
    buckets = list(buckets)  # a copy: hyperparameter objects run Python code below
    for bucket in buckets:
        if type(bucket) is not Bucket or type(bucket.params) is not list:
            check_buckets(buckets, n_threads)
        n_tensors += len(<list>bucket.params)
    nt = resolve_n_threads(n_threads)
    _work_init(&w, n_tensors, len(buckets), <char *>stack)
    try:
        if len(buckets) > 16:
            codes = <int *>PyMem_Malloc(len(buckets) * sizeof(int))
            if codes == NULL:
                raise MemoryError()
        for b in range(len(buckets)):
            bucket = buckets[b]
            kind = bucket.kind
            if not isinstance(kind, Kind):
                ok = False
                break
            kc = _KINDS_C.get(kind)
            if kc is None:
                raise ValueError(f"{kind!r} is not in adamcore.kinds.KINDS: the compiled "
                                 "kernels step registered kinds only")
            hyper = bucket.hyper
            kc.fill(hyper, &w.hypers[b], None)
            # In check_bucket's order, each refused with its words.
            step_obj, scale, first = bucket.step, bucket.grad_scale, bucket.first
            if not (type(step_obj) is int and 1 <= step_obj <= INT64_MAX):
                _validate.check_step(step_obj)
            if not _scale_ok(scale, &d_scale):
                _validate.check_grad_scale(scale)
                d_scale = _as_double(scale)
            if type(first) is not bool:
                _validate.check_flag("first", first)
            step, is_first = int(step_obj), bool(first)
            slots = kc.slots_of(&w.hypers[b])
            states, params, grads, indices = bucket.states, bucket.params, bucket.grads, bucket.indices
            if type(params) is not list:
                ok = False
                break
            n = len(<list>params)
            if not (n <= n_tensors - row and type(grads) is list and len(<list>grads) == n
                    and (indices is None or (type(indices) is list and len(<list>indices) == n))
                    and type(states) is tuple and len(<tuple>states) == 3):
                ok = False
                break
            for k in range(3):
                s = (<tuple>states)[k]
                if (s is not None) != bool((slots >> k) & 1) or (
                        s is not None and (type(s) is not list or len(<list>s) != n)):
                    ok = False
            if not ok:
                break
            s0, s1, s2 = states
            typenum = -1
            fmt, scales, seeds = bucket.fmt, bucket.scales, bucket.seeds
            if not (type(fmt) is int and 0 <= fmt <= 2 and (fmt == 0 or kc.code == ADAMCORE_ADAM)
                    and (fmt == 2) == (type(scales) is tuple and len(<tuple>scales) == 3)
                    and (fmt == 1) == (type(seeds) is list and len(<list>seeds) == n)
                    and (fmt == 2 or scales is None) and (fmt == 1 or seeds is None)):
                ok = False
                break
            for k in range(n):
                if fmt == 1 and not (type((<list>seeds)[k]) is int
                                     and 0 <= (<list>seeds)[k] < 2 ** 64):
                    ok = False
                    break
                if not _tensor_ok((<list>params)[k], (<list>grads)[k],
                                  None if s0 is None else (<list>s0)[k],
                                  None if s1 is None else (<list>s1)[k],
                                  None if s2 is None else (<list>s2)[k],
                                  slots, &w, row + k, &n_spans, &typenum, fmt,
                                  None if fmt != 2 else _scales_of(scales, k),
                                  (<list>seeds)[k] if fmt == 1 else 0):
                    ok = False
                    break
            if not ok:
                break
            _set_step(kc.code, &w.hypers[b], step, d_scale, is_first)
            if kc.code == ADAMCORE_ADAM:
                w.hypers[b].adam.state_format = fmt
            w.counts[b], w.typenums[b], codes[b] = n, typenum, kc.code
            row += n
        ok = ok and _step_disjoint(w.keys, w.keys + _SPANS * w.n, n_spans, _grad_starts(&w),
                                   _grad_ends(&w), row, _sort_space(&w), None)
        if not ok:
            check_buckets(buckets, n_threads)
            raise RuntimeError("adamcore internal error: the C checks refused a step that "
                               "adamcore._validate accepts")
        _run_calls(&w, len(buckets), codes, 0, nt)
    finally:
        if codes != codes_stack:
            PyMem_Free(codes)
        _work_free(&w)


# ---- one tensor ------------------------------------------------------------------

def step_one(kind, param, grad, states, step, grad_scale, n_threads, dict hyper):
    """One tensor's step (functional.adam_step): ``states`` as a Bucket's
    (per slot a one-item list or None), ``hyper`` a dict of the kind's
    fields by name (a dict, not keywords: a call with keywords costs more
    than the step).
    The checks of step_buckets, on the stack; anything they do not take goes
    through step_buckets as a Bucket of the same arguments, which words the
    error."""
    cdef _KindC kc = _KINDS_C.get(kind)
    cdef _Work w
    cdef double stack[_STACK_WORDS]
    cdef Py_ssize_t n_spans = 0, k
    cdef int typenum = -1, nt, slots
    cdef double d_scale
    cdef bint ok = kc is not None and type(states) is tuple and len(<tuple>states) == 3
    s = [None, None, None]
    _work_init(&w, 1, 1, <char *>stack)
    try:
        if ok:
            ok = (kc.fill_plain(hyper, True, &w.hypers[0])
                  and type(step) is int and 1 <= step <= INT64_MAX
                  and _scale_ok(grad_scale, &d_scale)
                  and (n_threads is None or (type(n_threads) is int and n_threads != 0)))
        if ok:
            if kc.cross_check is not None:
                kc.cross_check(kind.hyper_type(**hyper))
            slots = kc.slots_of(&w.hypers[0])
            for k in range(3):
                slot = (<tuple>states)[k]
                if (slot is not None) != bool((slots >> k) & 1) or (
                        slot is not None and (type(slot) is not list or len(<list>slot) != 1)):
                    ok = False
                    break
                s[k] = None if slot is None else (<list>slot)[0]
        ok = ok and (_tensor_ok(param, grad, s[0], s[1], s[2], slots, &w, 0, &n_spans, &typenum)
                     and _step_disjoint(w.keys, w.keys + _SPANS, n_spans, _grad_starts(&w),
                                        _grad_ends(&w), 1, _sort_space(&w), None))
        if not ok:
            step_buckets([Bucket(kind, kind.hyper_type(**hyper), step, [param], [grad], states,
                                 None, grad_scale)], n_threads)
            return
        nt = resolve_n_threads(n_threads)
        _set_step(kc.code, &w.hypers[0], step, d_scale, False)
        w.counts[0], w.typenums[0] = 1, typenum
        _run_calls(&w, 1, NULL, kc.code, nt)
    finally:
        _work_free(&w)
