"""The step protocol: the named types every layer passes to the next.

Glossary:

- **kind**: one optimizer algorithm (``Kind``): its state slots, its
  hyperparameters' type and range rules, its kernel, its reference function.
  The registry of kinds is adamcore.kinds.
- **hyper**: one kind's hyperparameters (adamcore.kinds.AdamHyper, ...), read
  off a param group; per-step values (step count, clipping scale, SGD's
  first-step flag) travel beside it, never inside.
- **slot**: one of a tensor's (at most ``SLOTS``) state arrays, in the
  kind's order; the hyperparameters say which slots a step uses
  (``Kind.required``: Adam's third slot only with amsgrad).
- **bucket**: params of one kind, hyper, dtype and step count, with their
  grads and state: what one kernel call steps (``Bucket``).
- **plan**: an optimizer's standing description of its step (``Plan``): its
  params in **rows** (``Row``) of one group, dtype, step count and slots, and
  the params that have no state yet (**outside**). The optimizer builds a
  plan when its params, state or options change; ``run(plan, grads, scale,
  n_threads)`` (adamcore._kernel.run, or adamcore.reference.run) steps the
  params whose grad is not None in one call, or returns False, having done
  nothing, when the plan does not cover this step (a grad for a param outside
  it, or options that now use other slots).

The run's contract, the same for both implementations: every present param
is stepped with its row's count + 1; a row whose params all stepped counts
one more step and loses its first-step flag; rows some of whose params were
skipped go to ``Plan.split``, which moves the skipped params to rows of
their own. So a frozen param, or one skipped once, costs one more kernel call
per step, not a slower path.
"""

from dataclasses import dataclass, field

import numpy as np

from adamcore import _validate, qstate

#: State slots per tensor (csrc/adamcore.h: adamcore_tensor.state).
SLOTS = 3


@dataclass(frozen=True, eq=False)
class Kind:
    """One optimizer kind: everything the layers need to step it.

    ``code`` is the kernel's (csrc/adamcore.h: ADAMCORE_ADAM ...);
    ``slots`` its state names in slot order and ``always`` those every param
    has from its first step; ``hyper_type`` the class of its hyperparameters
    and ``fields`` their range rules (adamcore._validate), in the order they
    are checked; ``options`` the param-group option a field comes from where
    the names differ (``beta1``/``beta2`` come from ``betas``); ``needs``
    says per slot when a step uses it: True (always), or the field whose
    value, when true or non-zero, asks for it; ``reference`` steps one bucket in
    NumPy (None: a kind of row gradients only, adamcore.rows); ``init`` names the option a new slot starts at (else zero);
    ``extra`` rules options outside the hyper; ``check`` a rule across
    fields."""

    name: str
    code: int
    slots: tuple
    always: tuple
    hyper_type: type
    fields: dict
    needs: tuple
    reference: object
    options: dict = field(default_factory=dict)
    init: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    check: object = None

    def __post_init__(self):
        _BY_NAME[self.name] = self

    def group_keys(self):
        """The group options this kind's hyper is read from, in field order."""
        keys = []
        for f in self.fields:
            key = "betas" if f in ("beta1", "beta2") else self.options.get(f, f)
            if key not in keys:
                keys.append(key)
        return tuple(keys)

    def hyper_from(self, group):
        """The hyper of a param group (read, not checked: adamcore._validate)."""
        values = {}
        for f in self.fields:
            if f == "beta1" or f == "beta2":
                betas = group["betas"]
                if type(betas) is not tuple or len(betas) != 2:
                    _validate.check_beta_pair(betas)  # set in param_groups after construction
                values[f] = betas[f == "beta2"]
            else:
                values[f] = group[self.options.get(f, f)]
        return self.hyper_type(**values)

    def required(self, hyper):
        """Per slot (``SLOTS`` of them), whether ``hyper`` uses it (``needs``)."""
        out = []
        for k in range(SLOTS):
            need = self.needs[k] if k < len(self.needs) else False
            if isinstance(need, str):
                value = getattr(hyper, need)
                need = bool(value) if isinstance(self.fields[need], _validate.Flag) else (
                    float(value) != 0)
            out.append(need)
        return tuple(out)

    def slots_used(self, group):
        """The state names a group's options use."""
        return tuple(s for s, need in zip(self.slots, self.required(self.hyper_from(group))) if need)

    def __repr__(self):
        return f"<adamcore kind {self.name!r}>"

    # A kind is a registry entry, looked up by identity (the binding's tables):
    # a copied or unpickled optimizer refers to the same entry, not a copy.
    def __reduce__(self):
        return (_registered_kind, (self.name,))

    def __deepcopy__(self, memo):
        return self


_BY_NAME = {}  # every Kind made, by name (adamcore.kinds.KINDS makes them)


def _registered_kind(name):
    return _BY_NAME[name]


@dataclass(eq=False)
class Bucket:
    """One kernel call's work: equal-length lists of params and grads, and
    per slot a list of state arrays or None where the hyper does not use it
    (``Kind.required``). ``step`` is the count after this step (>= 1);
    ``grad_scale`` multiplies every grad first (clipping; 1: none); ``first``
    says the state was created for this step (SGD starts its buffer at g);
    ``indices`` name the tensors in messages (``grads[3]``), or None.
    ``fmt`` is how the state is stored (adamcore.qstate: a ``StateFormat``'s
    code; Adam only); with int8 state ``scales`` holds per slot the list of
    absmax arrays (None where the slot is unused), with bfloat16 state
    ``seeds`` the tensors' rounding streams (adamcore.qstate.tensor_seed)."""

    kind: Kind
    hyper: object
    step: int
    params: list
    grads: list
    states: tuple
    indices: list = None
    grad_scale: float = 1.0
    first: bool = False
    fmt: int = 0
    scales: tuple = None
    seeds: list = None


@dataclass(eq=False)
class Row:
    """Params of one group that share a dtype, a step count and the slots
    they hold: ``indices`` (optimizer-wide), the params, and per slot the
    list of their state arrays (None where the row's ``slots`` leave it out:
    bit k of ``slots`` is slot k); ``fmt``, ``scales`` and ``seeds`` as a
    Bucket's (every list per param). Its step count and first-step flag live
    in its plan's arrays, at the row's position."""

    group: int
    slots: int
    indices: list
    params: list
    states: tuple
    fmt: int = 0
    scales: tuple = None
    seeds: list = None

    def empty_like(self):
        """A row of the same group, slots and format with no params yet."""
        lists = lambda t: None if t is None else tuple(None if x is None else [] for x in t)
        return Row(self.group, self.slots, [], [], lists(self.states), self.fmt,
                   lists(self.scales), None if self.seeds is None else [])

    def append(self, other, k):
        """Append param k of row ``other``."""
        self.indices.append(other.indices[k])
        self.params.append(other.params[k])
        for src, dst in zip(other.states, self.states):
            if dst is not None:
                dst.append(src[k])
        for src, dst in zip(other.scales or (), self.scales or ()):
            if dst is not None:
                dst.append(src[k])
        if self.seeds is not None:
            self.seeds.append(other.seeds[k])


class Plan:
    """An optimizer's step, standing (see the module docstring).

    ``groups`` are the optimizer's live param-group dicts (options are read
    off them at each run); ``steps[r]`` / ``first[r]`` the step count and
    first-step flag of ``rows[r]``; ``outside`` the params without all the
    state their group needs. Rows are replaced (``split``), never changed
    in place. ``compiled`` is where the binding keeps its
    C-level copy of the plan (rows as tables, hyper structs, the sorted
    spans of params and state), ``scratch`` the NumPy reference's buffers;
    both are caches, dropped when the rows change."""

    def __init__(self, kind, groups, rows, steps, first, outside, n_params, state_dtypes=None):
        self.kind, self.groups, self.rows = kind, groups, rows
        # per group, the state_dtype its rows were built for (None: the
        # param's dtype); a run whose group asks for another does not cover the step
        self.state_dtypes = [None] * len(groups) if state_dtypes is None else state_dtypes
        self.steps = np.asarray(steps, np.int64)
        self.first = np.asarray(first, np.uint8)
        self.outside, self.n_params, self.n_groups = outside, n_params, len(groups)
        self.compiled, self.scratch = None, {}

    def __getstate__(self):
        # a copied plan (copy.deepcopy, pickle of its optimizer) starts with
        # empty caches: the binding's is C memory, the buffers are scratch
        return {**self.__dict__, "compiled": None, "scratch": {}}

    @classmethod
    def build(cls, kind, groups, arrays, steps, first=()):
        """The plan of params ``groups`` with state ``arrays`` (per param, a
        dict or None) and step counts ``steps`` (per param); ``first`` the
        params whose state was created for the coming step."""
        first = set(first)
        rows, keys, counts, flags, outside, i = [], {}, [], [], [], 0
        state_dtypes = []
        for gi, group in enumerate(groups):
            used = kind.required(kind.hyper_from(group))
            names = [s for s, need in zip(kind.slots, used) if need]
            mask = sum(1 << k for k, need in enumerate(used) if need)
            state_dtype = group.get("state_dtype")
            state_dtypes.append(state_dtype)
            for p in group["params"]:
                st = arrays[i]
                if st is None or any(s not in st for s in names):
                    outside.append(i)
                    i += 1
                    continue
                fmt = qstate.stored_format(st, kind.slots[0])
                if fmt != qstate.format_of(state_dtype, p):
                    state_dtypes[gi] = _MISMATCH  # the general path says why
                key = (gi, p.dtype.num, int(steps[i]), i in first, fmt.code)
                r = keys.get(key)
                if r is None:
                    r = keys[key] = len(rows)
                    slots = tuple([] if need else None for need in used)
                    scales = (tuple(None if x is None else [] for x in slots)
                              if fmt is qstate.INT8 else None)
                    rows.append(Row(gi, mask, [], [], slots, fmt.code, scales,
                                    [] if fmt is qstate.BF16 else None))
                    counts.append(key[2])
                    flags.append(key[3])
                row = rows[r]
                row.indices.append(i)
                row.params.append(p)
                for k, (s, lst) in enumerate(zip(kind.slots, row.states)):
                    if lst is not None:
                        lst.append(st[s])
                        if row.scales is not None:
                            row.scales[k].append(st[qstate.scale_key(s)])
                if row.seeds is not None:
                    row.seeds.append(qstate.tensor_seed(group.get("seed", 0), i))
                i += 1
        return cls(kind, groups, rows, counts, flags, outside, i, state_dtypes)

    def param_steps(self, out):
        """Write each row's step count into ``out`` (per param)."""
        for row, step in zip(self.rows, self.steps.tolist()):
            out[row.indices] = step
        return out

    def advance(self, stepped):
        """Count one more step for the params ``stepped`` (a set of indices):
        the run's contract (the NumPy run, and row gradients stepped outside
        a run, adamcore.rows); rows only some of whose params stepped are
        split."""
        partial = []
        for r, row in enumerate(self.rows):
            n = sum(i in stepped for i in row.indices)
            if n == len(row.indices):
                self.steps[r] += 1
                self.first[r] = 0
            elif n:
                partial.append(r)
        if partial:
            marks = [True if i in stepped else None for i in range(self.n_params)]
            self.split(partial, marks)

    def buckets(self, grads, scale):
        """This step's buckets (the reference run, and the binding's
        refusals, use them), or None when the plan does not cover it.
        Checks the hyperparameters, naming them as the groups do."""
        if len(self.groups) != self.n_groups:
            raise ValueError(f"param_groups changed from {self.n_groups} to {len(self.groups)} "
                             "groups; add groups with add_param_group")
        kind, masks = self.kind, []
        for group in self.groups:
            hyper = kind.hyper_from(group)
            _validate.check_hyper(kind, hyper, kind.options)
            masks.append((hyper, sum(1 << k for k, need in enumerate(kind.required(hyper))
                                     if need)))
        if any(masks[row.group][1] != row.slots for row in self.rows):
            return None
        if any(g.get("state_dtype") != sd for g, sd in zip(self.groups, self.state_dtypes)):
            return None
        if any(grads[i] is not None for i in self.outside):
            return None
        out = []
        for r, row in enumerate(self.rows):
            present = [k for k, i in enumerate(row.indices) if grads[i] is not None]
            if present:
                pick = lambda lists: None if lists is None else tuple(
                    None if s is None else [s[k] for k in present] for s in lists)
                out.append(Bucket(
                    kind, masks[row.group][0], int(self.steps[r]) + 1,
                    [row.params[k] for k in present], [grads[row.indices[k]] for k in present],
                    pick(row.states), [row.indices[k] for k in present], scale,
                    bool(self.first[r]), row.fmt, pick(row.scales),
                    None if row.seeds is None else [row.seeds[k] for k in present]))
        return out

    def split(self, rows, grads):
        """After a run: move the skipped params of ``rows`` (positions of rows
        some of whose params had no grad) into rows of their own, at the step
        count they kept; the stepped ones count one more step. Rows with
        equal group, dtype, count, flag and slots merge."""
        parts = []
        split = set(rows)
        for r, row in enumerate(self.rows):
            step, first = int(self.steps[r]), bool(self.first[r])
            if r not in split:
                parts.append((row, list(range(len(row.indices))), step, first))
                continue
            ran = [k for k, i in enumerate(row.indices) if grads[i] is not None]
            kept = [k for k, i in enumerate(row.indices) if grads[i] is None]
            parts.append((row, ran, step + 1, False))
            parts.append((row, kept, step, first))
        merged, keys, steps, flags = [], {}, [], []
        for row, ks, step, first in parts:
            if not ks:
                continue
            key = (row.group, row.params[ks[0]].dtype.num, step, first, row.slots, row.fmt)
            r = keys.get(key)
            if r is None:
                r = keys[key] = len(merged)
                merged.append(row.empty_like())
                steps.append(step)
                flags.append(first)
            for k in ks:
                merged[r].append(row, k)
        self.rows = merged
        self.steps = np.asarray(steps, np.int64)
        self.first = np.asarray(flags, np.uint8)
        self.compiled, self.scratch = None, {}


_MISMATCH = object()  # a group's state_dtype that no run matches

# ---- checks of a whole step (worded by adamcore._validate) ----------------------

def _check_list(name, items, n):
    if type(items) is not list:
        raise TypeError(f"{name} must be a list, got {type(items).__name__}")
    if len(items) != n:
        raise ValueError(f"expected {n} {name} (one per param), got {len(items)}")


def check_bucket(bucket):
    """One bucket, whole: its hyperparameters and scalars, its lists, the
    state slots its hyperparameters use, every tensor, one dtype. Returns the
    named arrays, for the overlap check."""
    if type(bucket) is not Bucket:
        raise TypeError(f"each bucket must be an adamcore.plan.Bucket, got {type(bucket).__name__}")
    kind = bucket.kind
    if not isinstance(kind, Kind):
        raise TypeError(f"a bucket's kind must be an adamcore.plan.Kind, got {type(kind).__name__}")
    if kind.reference is None:
        raise ValueError(f"{kind!r} steps row gradients (adamcore.RowGrad) only, not buckets")
    _validate.check_hyper(kind, bucket.hyper)
    _validate.check_step(bucket.step)
    _validate.check_grad_scale(bucket.grad_scale)
    _validate.check_flag("first", bucket.first)
    params = bucket.params
    n = len(params) if type(params) is list else 0
    _check_list("params", params, n)
    _check_list("grads", bucket.grads, n)
    if bucket.indices is not None:
        _check_list("indices", bucket.indices, n)
    states = bucket.states
    if type(states) is not tuple or len(states) != SLOTS or any(
            s is not None and type(s) is not list for s in states):
        raise TypeError(f"a bucket's states must be a tuple of {SLOTS} lists or None")
    for k, need in enumerate(kind.required(bucket.hyper)):
        name = repr(kind.slots[k]) if k < len(kind.slots) else f"slot {k}"
        if (states[k] is not None) != need:
            raise ValueError(f"state {name} is {'missing' if need else 'not used'} "
                             "with these hyperparameters")
        if need and len(states[k]) != n:
            raise ValueError(f"expected {n} {kind.slots[k]} arrays, got {len(states[k])}")
    fmt, scales = _check_format(bucket, n)
    named, dtype = [], None
    for k, param in enumerate(params):
        index = None if bucket.indices is None else bucket.indices[k]
        state = [(name, s[k]) for name, s in zip(kind.slots, states) if s is not None]
        scale = [(qstate.scale_key(name), s[k]) for name, s in zip(kind.slots, scales or ())
                 if s is not None]
        named += _validate.check_tensor(index, param, bucket.grads[k], state, fmt, scale)
        if dtype is None:
            dtype = param.dtype
        elif param.dtype != dtype:
            raise TypeError(
                f"{_validate.label('param', index)} has dtype {param.dtype} but the other "
                f"params of this call have {dtype}; one call steps one dtype"
            )
    return named


def _check_format(bucket, n):
    """A bucket's state format, its scales and seeds checked: (format, scales)."""
    fmt = next((f for f in qstate.FORMATS.values() if f.code == bucket.fmt
                and type(bucket.fmt) is int), None)
    if fmt is None:
        codes = sorted(f.code for f in qstate.FORMATS.values())
        raise ValueError(f"a bucket's fmt must be one of {codes}, got {bucket.fmt!r}")
    if not fmt.is_native() and bucket.kind.name != "adam":
        raise ValueError(f"{bucket.kind!r} keeps its state in the param's dtype; "
                         "low-precision state is Adam's")
    scales, seeds = bucket.scales, bucket.seeds
    if fmt is qstate.INT8:
        if type(scales) is not tuple or len(scales) != SLOTS or any(
                (s is None) != (t is None) or (s is not None and (type(s) is not list
                                                                  or len(s) != n))
                for s, t in zip(scales, bucket.states)):
            raise ValueError("int8 state needs scales: a tuple with a list of absmax arrays "
                             "wherever states has a list")
    elif scales is not None:
        raise ValueError("a bucket's scales are int8 state's; they must be None here")
    if fmt is qstate.BF16:
        if type(seeds) is not list or len(seeds) != n:
            raise ValueError(f"bfloat16 state needs seeds: a list of {n} ints")
        for seed in seeds:
            _validate.SEED.check("seeds[k]", seed)
    elif seeds is not None:
        raise ValueError("a bucket's seeds are bfloat16 state's; they must be None here")
    return fmt, scales


def check_buckets(buckets, n_threads):
    """Validate a whole step before anything runs."""
    _validate.check_n_threads(n_threads)
    if type(buckets) is not list:
        raise TypeError(f"buckets must be a list, got {type(buckets).__name__}")
    named = []
    for bucket in buckets:
        named += check_bucket(bucket)
    _validate.check_no_overlap(named)
