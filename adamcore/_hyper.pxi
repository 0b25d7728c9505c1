# Hyperparameters: a kind's named hyper (adamcore.kinds) into its C struct,
# checked by the kind's range rules (adamcore._validate), read off the
# registry at import. Anything the fast check does not take (a NumPy scalar,
# a value out of range) goes to adamcore._validate, which refuses it with
# its message or accepts it; then the value is converted as Python would.

cdef union _Hyper:
    adamcore_adam_hyper adam
    adamcore_family_hyper family

cdef enum:
    _REAL = 0
    _FLAG = 1
    _CHOICE = 2
    _MAX_FIELDS = 16

cdef _Hyper _layout  # only its field addresses are used

cdef Py_ssize_t _at(void *field) noexcept:
    return <char *>field - <char *>&_layout

# Where each field of the C structs lives in _Hyper.
_ADAM_FIELDS = {
    "lr": _at(&_layout.adam.lr), "beta1": _at(&_layout.adam.beta1),
    "beta2": _at(&_layout.adam.beta2), "eps": _at(&_layout.adam.eps),
    "weight_decay": _at(&_layout.adam.weight_decay), "decoupled": _at(&_layout.adam.decoupled),
    "amsgrad": _at(&_layout.adam.amsgrad), "maximize": _at(&_layout.adam.maximize),
    "eps_mode": _at(&_layout.adam.eps_mode),
}
_FAMILY_FIELDS = {
    "lr": _at(&_layout.family.lr), "weight_decay": _at(&_layout.family.weight_decay),
    "eps": _at(&_layout.family.eps), "momentum": _at(&_layout.family.momentum),
    "dampening": _at(&_layout.family.dampening), "alpha": _at(&_layout.family.alpha),
    "lr_decay": _at(&_layout.family.lr_decay), "beta1": _at(&_layout.family.beta1),
    "beta2": _at(&_layout.family.beta2), "maximize": _at(&_layout.family.maximize),
    "nesterov": _at(&_layout.family.nesterov), "centered": _at(&_layout.family.centered),
    "decoupled": _at(&_layout.family.decoupled), "amsgrad": _at(&_layout.family.amsgrad),
    "rectify": _at(&_layout.family.rectify),
}


cdef inline double _as_double(object x) except? -1.0:
    """float(x), without a call for a plain float."""
    return PyFloat_AS_DOUBLE(x) if type(x) is float else float(x)


cdef inline bint _plain_real(object x, double *out) noexcept:
    """x is a Python float, or an int of at most 2**53 (exact in a double)."""
    if type(x) is float:
        out[0] = PyFloat_AS_DOUBLE(x)
        return True
    if type(x) is int and -9007199254740992 <= x <= 9007199254740992:
        out[0] = <double>x
        return True
    return False


cdef class _KindC:
    """A kind as the binding runs it: its kernel number and, per hyper
    field, the C struct offset, the rule's kind and range."""
    cdef readonly object kind
    cdef object hyper_type, cross_check
    cdef int code
    cdef Py_ssize_t n_fields
    cdef list names
    cdef list choices
    cdef Py_ssize_t offsets[_MAX_FIELDS]
    cdef int how[_MAX_FIELDS]
    cdef double lo[_MAX_FIELDS]
    cdef double hi[_MAX_FIELDS]
    cdef bint hi_open[_MAX_FIELDS]
    cdef tuple group_keys
    cdef int need_field[3]  # per slot: -2 unused, -1 always, else the field that asks for it

    def __init__(self, kind):
        cdef Py_ssize_t j = 0
        self.kind, self.hyper_type, self.code = kind, kind.hyper_type, kind.code
        self.cross_check = kind.check
        layout = _ADAM_FIELDS if kind.code == ADAMCORE_ADAM else _FAMILY_FIELDS
        self.names, self.choices = [], []
        if len(kind.fields) > _MAX_FIELDS:
            raise ValueError(f"kind {kind.name!r} has more than {_MAX_FIELDS} fields")
        for name, rule in kind.fields.items():
            self.names.append(name)
            self.offsets[j] = layout[name]
            self.choices.append(getattr(rule, "values", None))
            if isinstance(rule, _validate.Real):
                self.how[j], self.lo[j], self.hi[j], self.hi_open[j] = (
                    _REAL, rule.lo, rule.hi, rule.hi_open)
            else:
                self.how[j] = _CHOICE if isinstance(rule, _validate.Choice) else _FLAG
            j += 1
        self.n_fields = j
        self.group_keys = kind.group_keys()
        for j in range(3):
            need = kind.needs[j] if j < len(kind.needs) else False
            self.need_field[j] = (self.names.index(need) if isinstance(need, str)
                                  else (-1 if need is True else -2))

    cdef int slots_of(self, const _Hyper *h) noexcept:
        """Bit k: a step with the filled ``h`` uses state slot k (Kind.needs,
        read off the struct as Kind.required reads the hyper)."""
        cdef int mask = 0, k, j
        cdef const char *base = <const char *>h
        for k in range(3):
            j = self.need_field[k]
            if j == -1 or (j >= 0 and (
                    (<const double *>(base + self.offsets[j]))[0] != 0.0 if self.how[j] == _REAL
                    else (<const int *>(base + self.offsets[j]))[0] != 0)):
                mask |= 1 << k
        return mask

    cdef bint fill_plain(self, object source, bint by_key, _Hyper *out) except -1:
        """Write the fields of ``source`` (a hyper, or with ``by_key`` a dict
        of field values) into ``out`` while checking them at C speed; False
        at the first value that is not plain or not in range."""
        cdef Py_ssize_t j
        cdef double d
        cdef char *base = <char *>out
        memset(out, 0, sizeof(_Hyper))
        if self.code != ADAMCORE_ADAM:
            out.family.kind = self.code
        if by_key and len(<dict>source) != self.n_fields:
            return False
        for j in range(self.n_fields):
            if by_key:
                x = (<dict>source).get(<str>self.names[j])
            else:
                x = getattr(source, <str>self.names[j])
            if self.how[j] == _REAL:
                if not (_plain_real(x, &d) and isfinite(d) and d >= self.lo[j]
                        and (d < self.hi[j] if self.hi_open[j] else d <= self.hi[j])):
                    return False
                (<double *>(base + self.offsets[j]))[0] = d
            elif self.how[j] == _FLAG:
                if type(x) is not bool:
                    return False
                (<int *>(base + self.offsets[j]))[0] = 1 if x is True else 0
            else:
                if type(x) is not str or x not in <tuple>self.choices[j]:
                    return False
                (<int *>(base + self.offsets[j]))[0] = (<tuple>self.choices[j]).index(x)
        return True

    cdef int fill(self, object hyper, _Hyper *out, object names) except -1:
        """Check ``hyper`` and write it into ``out`` (per-step fields zero);
        ``names``: the field -> option names a refusal uses, or None. Plain
        values take fill_plain; anything else goes to adamcore._validate,
        then is converted as Python converts it."""
        cdef Py_ssize_t j
        cdef char *base = <char *>out
        if type(hyper) is self.hyper_type and self.fill_plain(hyper, False, out):
            if self.cross_check is not None:
                self.cross_check(hyper)
            return 0
        _validate.check_hyper(self.kind, hyper, names)  # raises, or accepts
        for j in range(self.n_fields):
            x = getattr(hyper, <str>self.names[j])
            if self.how[j] == _REAL:
                (<double *>(base + self.offsets[j]))[0] = _as_double(x)
            elif self.how[j] == _FLAG:
                (<int *>(base + self.offsets[j]))[0] = 1 if x else 0
            else:
                (<int *>(base + self.offsets[j]))[0] = (<tuple>self.choices[j]).index(x)
        return 0


cdef inline void _set_step(int code, _Hyper *h, int64_t step, double grad_scale,
                           bint first) noexcept nogil:
    """The per-call fields: the step count after this step, the clipping
    scale, SGD's first-step flag."""
    if code == ADAMCORE_ADAM:
        h.adam.step, h.adam.grad_scale = step, grad_scale
    else:
        h.family.step, h.family.grad_scale, h.family.first = step, grad_scale, first


cdef inline int _call(int code, int typenum, const adamcore_tensor *table, int64_t n,
                      const _Hyper *h, int nt) noexcept nogil:
    """One kernel call: kind ``code``, dtype ``typenum``."""
    if code == ADAMCORE_ADAM:
        if typenum == cnp.NPY_FLOAT64:
            return adamcore_adam_step_f64(table, n, &h.adam, nt)
        return adamcore_adam_step_f32(table, n, &h.adam, nt)
    if typenum == cnp.NPY_FLOAT64:
        return adamcore_family_step_f64(table, n, &h.family, nt)
    return adamcore_family_step_f32(table, n, &h.family, nt)


#: Kind -> _KindC, for every registered kind.
_KINDS_C = {kind: _KindC(kind) for kind in kinds.KINDS.values()}
