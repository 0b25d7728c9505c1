"""The optimizer base class: PyTorch's API (param groups, lazy state,
``step``, ``state_dict``) over NumPy arrays, for every adamcore optimizer.

Layers: a subclass names its kind (``KIND``, from adamcore.kinds) and its
constructor's options; this class keeps the params, state and groups and a
plan of the step (adamcore.plan.Plan), which the implementation chosen at
construction (adamcore._impl: the C binding or the NumPy reference) runs.

Design: each param's state arrays live in a dict; step counts live in the
plan's rows, written back to one int64 array (``_steps``) before anything
reads them. A step runs the plan: one C call for every param whose grad is
present, with a frozen param or one skipped once costing a kernel call more,
not a slower path. Only a step the plan does not cover (a param's first
grad, options that now use more state) takes the general path: it creates
the missing state, kept aside until the step succeeds so that a refused
step changes nothing, builds a new plan and runs it.

Threads: the kernel runs without the GIL, so two threads stepping one
optimizer would interleave on the same arrays and lose steps. Every method
that reads or writes the state (step, state, state_dict, load_state_dict,
save, add_param_group) and the schedules' writes to the groups hold the
optimizer's ``lock`` (a reentrant lock): N threads x K steps equal N*K
sequential steps. Separate optimizers share nothing and step in parallel.
"""

import functools
import numbers
import threading
import types
from collections.abc import Mapping

import numpy as np

from adamcore import _alloc, _impl, _validate, checkpoint, clip, qstate, rows
from adamcore.plan import Plan
from adamcore.rowgrad import RowGrad

# Asked only off the fast path (a run that does not cover the step, clipping).
_has_row_grads = (_impl.kernel().has_row_grads if _impl.kernel() is not None
                  else lambda grads: any(type(g) is RowGrad for g in grads))


def _serialised(method):
    """``method`` holding the optimizer's lock (see the module docstring)."""
    @functools.wraps(method)
    def locked(self, *args, **kwargs):
        with self.lock:
            return method(self, *args, **kwargs)
    return locked


def _check_param(param, index):
    name = f"params[{index}]"
    if not isinstance(param, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray, got {type(param).__name__}")
    if param.dtype not in _validate.FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype float32 or float64, got {param.dtype}")
    if not param.flags.writeable:
        raise ValueError(f"{name} is read-only; it is updated in place")
    if not (param.flags.c_contiguous or param.flags.f_contiguous):
        raise ValueError(f"{name} must be C- or F-contiguous; it is updated in place, never copied")
    if not param.flags.aligned:
        raise ValueError(f"{name} is not aligned to its dtype ({param.dtype})")


def _qmap_of(arrays, kind):
    """The map id an int8 state entry carries (adamcore.qstate.QMAP_ID)."""
    if qstate.stored_format(arrays, kind.slots[0]) is qstate.INT8:
        return {"qmap": qstate.QMAP_ID}
    return {}


class _StateView(Mapping):
    """``opt.state``: param index -> a read-only dict of its state."""

    def __init__(self, opt):
        self._opt = opt

    def __getitem__(self, i):
        with self._opt.lock:
            arrays = self._opt._arrays
            if not isinstance(i, numbers.Integral) or not 0 <= i < len(arrays) or arrays[i] is None:
                raise KeyError(i)
            return types.MappingProxyType({"step": int(self._opt._synced_steps()[i]), **arrays[i],
                                           **_qmap_of(arrays[i], self._opt.KIND)})

    def __iter__(self):
        with self._opt.lock:
            return iter([i for i, st in enumerate(self._opt._arrays) if st is not None])

    def __len__(self):
        with self._opt.lock:
            return sum(st is not None for st in self._opt._arrays)

    def __repr__(self):
        return repr({i: dict(self[i]) for i in self})


class Optimizer:
    """Base of adamcore's optimizers. A subclass sets ``KIND`` (an entry of
    adamcore.kinds.KINDS) and passes its options as ``defaults``;
    ``STATE_KEYS`` and ``ALWAYS_KEYS`` (the kind's slots, and those every
    param has from its first step) follow from it."""

    KIND = None
    #: Options added after checkpoint format 1, with the value that keeps the
    #: old behaviour: a group saved without one loads with it.
    ADDED_OPTIONS = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.KIND is not None:
            cls.STATE_KEYS, cls.ALWAYS_KEYS = cls.KIND.slots, cls.KIND.always

    def __init__(self, params, defaults, *, max_grad_norm=None, skip_nonfinite=False,
                 n_threads=None, impl="auto"):
        self._normalize(defaults)
        _validate.check_group(self.KIND, defaults)
        _validate.check_n_threads(n_threads)
        if max_grad_norm is not None and not _validate._real("max_grad_norm", max_grad_norm) > 0:
            raise ValueError(f"max_grad_norm must be None or > 0, got {max_grad_norm!r}")
        if not isinstance(skip_nonfinite, (bool, np.bool_)):
            raise TypeError(f"skip_nonfinite must be a bool, got {type(skip_nonfinite).__name__}")
        self.max_grad_norm = max_grad_norm
        self.skip_nonfinite = bool(skip_nonfinite)
        self.skipped_steps = 0       # steps refused by skip_nonfinite
        self.last_grad_norm = None   # global 2-norm of the last step's grads, when clipping
        self.defaults = defaults
        self.n_threads = n_threads
        self.lock = threading.RLock()  # see the module docstring
        self._impl_name = _impl.resolve(impl)
        self._run = _impl.runner(self._impl_name)
        self.param_groups = []
        self._params = []
        self._arrays = []                    # per param: its state arrays, or None
        self._steps = np.zeros(0, np.int64)  # per param: steps taken
        self._plan = None                    # see the module docstring
        if isinstance(params, np.ndarray):
            raise TypeError("params must be a list of arrays or of param-group dicts, "
                            "got a single array; wrap it in a list")
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def __getstate__(self):
        # a lock cannot be pickled or copied; a copy gets a lock of its own
        return {k: v for k, v in self.__dict__.items() if k != "lock"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.lock = threading.RLock()

    @property
    def impl(self):
        """"c" or "numpy": the implementation chosen at construction."""
        return self._impl_name

    @staticmethod
    def _normalize(group):
        if "betas" in group:
            _validate.check_beta_pair(group["betas"])
            group["betas"] = tuple(group["betas"])

    # ---- groups ------------------------------------------------------------

    @_serialised
    def add_param_group(self, param_group):
        """Add a group of params with its own options (PyTorch semantics)."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param group must be a dict, got {type(param_group).__name__}")
        params = param_group.get("params")
        if isinstance(params, np.ndarray):
            params = [params]
        elif isinstance(params, (set, frozenset)) or params is None:
            raise TypeError("param group 'params' must be an ordered list of arrays")
        params = list(params)
        unknown = set(param_group) - set(self.defaults) - {"params"}
        if unknown:
            raise ValueError(f"unknown option(s) in param group: {sorted(unknown)}")
        group = {**self.defaults, **param_group, "params": params}
        self._normalize(group)
        _validate.check_group(self.KIND, group)
        if group.get("state_dtype") == "bfloat16":
            qstate.bfloat16()  # ImportError, saying how to install it
        start = len(self._params)
        for k, p in enumerate(params):
            _check_param(p, start + k)
        named = [(f"params[{i}]", p) for i, p in enumerate(self._params + params)]
        _validate.check_no_overlap(named)
        self.param_groups.append(group)
        self._params.extend(params)
        self._arrays.extend([None] * len(params))
        self._steps = np.concatenate([self._synced_steps(), np.zeros(len(params), np.int64)])
        self._plan = self._new_plan(self._arrays)

    # ---- stepping ----------------------------------------------------------

    def step(self, grads):
        """Apply one step to every param whose grad is not None.

        Returns True, or False when ``skip_nonfinite`` found a NaN or inf in
        the grads and skipped the step (params, state and step counts all
        unchanged; ``skipped_steps`` counts these). With ``max_grad_norm``,
        the grads' global 2-norm (``last_grad_norm``) is taken in one pass that
        also finds non-finite values, and the step uses the grads scaled by
        ``min(max_grad_norm / (norm + 1e-6), 1)`` (``torch.nn.utils.
        clip_grad_norm_``) without writing them. Otherwise non-finite grads
        propagate into the params, as in PyTorch."""
        lock = self.lock  # held by hand: a decorator would cost more than the lock
        lock.acquire()
        try:
            if type(grads) is not list or len(grads) != len(self._params):
                grads = self._grad_list(grads)
            scale = 1.0
            if self.max_grad_norm is not None or self.skip_nonfinite:
                if _has_row_grads(grads):
                    return self._step_rows(grads)
                scale = self._clip_scale(grads)
                if scale is None:
                    return False
            if self._plan.groups is not self.param_groups:  # the list replaced: read it again
                self._plan = self._new_plan(self._arrays)
            if not self._run(self._plan, grads, scale, self.n_threads):
                return self._step_general(grads, scale)
            return True
        finally:
            lock.release()

    def _step_scaled(self, grads, scale):
        """``step`` past its clipping: ``grads`` one per param, ``scale`` the
        clipping scale decided by the caller (adamcore.distributed takes the
        norm across processes). The caller holds the lock."""
        if self._plan.groups is not self.param_groups:
            self._plan = self._new_plan(self._arrays)
        if not self._run(self._plan, grads, scale, self.n_threads):
            return self._step_general(grads, scale)
        return True

    def _grad_list(self, grads):
        """``step``'s grads as a list of one per param, or the error."""
        n = len(self._params)
        if type(grads) is not list:
            if isinstance(grads, np.ndarray):
                if n != 1:
                    raise TypeError(f"step() got one array but the optimizer has {n} params; "
                                    "pass a list of grads in param order")
                grads = [grads]
            else:
                grads = list(grads)
        if len(grads) != n:
            raise ValueError(f"expected {n} grads (one per param, None to skip), "
                             f"got {len(grads)}")
        return grads

    def _clip_scale(self, grads, row_sums=()):
        """The grads' clipping scale (1 without max_grad_norm), or None when
        skip_nonfinite skips the step (counted in skipped_steps): one norm
        pass over the dense grads, plus each row gradient's (sum of squares,
        non-finite) in ``row_sums``."""
        present = [i for i, g in enumerate(grads) if g is not None]
        sumsq, nonfinite = clip.grad_sumsq([grads[i] for i in present], indices=present,
                                           n_threads=self.n_threads, impl=self.impl)
        for s, bad in row_sums:
            sumsq, nonfinite = sumsq + s, nonfinite or bad
        return clip.step_scale(self, sumsq, nonfinite)

    @_serialised
    def apply_gradients(self, grads_and_vars):
        """Keras form: ``opt.apply_gradients(zip(grads, params))``."""
        index = {id(p): i for i, p in enumerate(self._params)}
        grads = [None] * len(self._params)
        for pair in grads_and_vars:
            grad, var = pair
            i = index.get(id(var))
            if i is None:
                raise ValueError("apply_gradients got a variable that is not a param of this "
                                 "optimizer (params are matched by identity)")
            if grads[i] is not None:
                raise ValueError(f"apply_gradients got params[{i}] twice")
            grads[i] = grad
        self.step(grads)

    def _new_plan(self, arrays, first=()):
        return Plan.build(self.KIND, self.param_groups, arrays, self._synced_steps(), first)

    def _synced_steps(self):
        """The per-param step counts, with the plan's counts written back."""
        return self._steps if self._plan is None else self._plan.param_steps(self._steps)

    def _fresh_state(self, grads):
        """{param index: its state dict with the arrays this step adds} for
        every param with a grad and missing state; each kind of array is
        carved for all of them from one buffer (adamcore._alloc)."""
        kind, wanted, i = self.KIND, {}, 0
        for group in self.param_groups:
            keys = kind.slots_used(group)
            for p in group["params"]:
                st = self._arrays[i]
                if grads[i] is not None:
                    for k in keys:
                        if st is None or k not in st:
                            wanted.setdefault(k, []).append((i, p, group))
                    if st is None and not keys:  # a state with a step count only (SGD)
                        wanted.setdefault(None, []).append((i, p, group))
                i += 1
        fresh = {}
        for k, owners in wanted.items():
            native = [o for o in owners if k is None or qstate.format_of(
                o[2].get("state_dtype"), o[1]).is_native()]
            new = (_alloc.zeros_like_aligned([p for _, p, _ in native]) if k
                   else [None] * len(native))
            for (i, _, group), a in zip(native, new):
                st = fresh.setdefault(i, dict(self._arrays[i] or {}))
                if k is not None:
                    value = group[kind.init[k]] if k in kind.init else 0.0
                    if value:
                        a.fill(value)
                    st[k] = a
            for i, p, group in owners:  # low-precision state (adamcore.qstate)
                fmt = None if k is None else qstate.format_of(group.get("state_dtype"), p)
                if fmt is not None and not fmt.is_native():
                    (arrays,) = qstate.new_arrays(fmt, k, [p])
                    fresh.setdefault(i, dict(self._arrays[i] or {})).update(arrays)
        return fresh

    def _check_formats(self):
        """Every param's state is in the format its group's state_dtype asks
        for: state_dtype cannot change under existing state (it would be
        reinterpreted); load_state_dict(..., convert=True) converts."""
        i = 0
        for gi, group in enumerate(self.param_groups):
            for p in group["params"]:
                st = self._arrays[i]
                if st:
                    have = qstate.stored_format(st, self.KIND.slots[0])
                    want = qstate.format_of(group.get("state_dtype"), p)
                    if have != want:
                        raise ValueError(
                            f"params[{i}] has {have.name or p.dtype} state but param group {gi} "
                            f"has state_dtype={group.get('state_dtype')!r}; state_dtype cannot "
                            "change once a param has state. To convert it, load the state into "
                            "an optimizer with the new state_dtype: "
                            "new.load_state_dict(old.state_dict(), convert=True)")
                i += 1

    def _step_general(self, grads, scale):
        """A step the plan does not cover: row gradients (``_step_rows``), or
        the missing state is created and kept aside, a plan over it is built
        and run; both replace the old ones only when the run succeeded, so a
        refused step changes nothing. Returns True."""
        if _has_row_grads(grads):  # the run does not take row gradients
            return self._step_rows(grads)
        kind = self.KIND
        for group in self.param_groups:  # before the state they size is made
            hyper = kind.hyper_from(group)
            _validate.check_hyper(kind, hyper, kind.options)
            _validate.check_group(kind, group)
        self._check_formats()
        fresh = self._fresh_state(grads)
        arrays = [fresh.get(i, st) for i, st in enumerate(self._arrays)]
        plan = self._new_plan(arrays, first=fresh)
        if not self._run(plan, grads, scale, self.n_threads):
            raise RuntimeError("adamcore internal error: a new plan does not cover its step")
        self._arrays, self._plan = arrays, plan
        return True

    def _step_rows(self, grads):
        """A step with row gradients (adamcore.rows) among the grads: every
        RowGrad checked and coalesced, the norm taken, and state for it made,
        before anything is written; then the dense grads run as a plan run
        and each RowGrad as one row-step call, and the step counts advance."""
        kind, impl, nt = self.KIND, self.impl, self.n_threads
        dense, work, i = list(grads), [], 0
        for group in self.param_groups:
            for p in group["params"]:
                g = grads[i]
                if type(g) is RowGrad:
                    if group.get("state_dtype") is not None:
                        raise ValueError(f"grads[{i}] is a RowGrad, but param group of params[{i}] "
                                         f"has state_dtype={group['state_dtype']!r}; row "
                                         "gradients step state in the param's dtype only "
                                         "(state_dtype=None)")
                    semantics = rows.semantics_of(kind, group, i)
                    rows.check(i, p, g)
                    work.append((i, p, g, group, semantics))
                    dense[i] = None
                elif g is not None and kind.reference is None:
                    raise TypeError(f"grads[{i}] is a {type(g).__name__}; {type(self).__name__} "
                                    "steps row gradients (adamcore.RowGrad) only, as "
                                    "torch.optim.SparseAdam; use Adam for dense grads")
                i += 1
        coalesced = [rows.prepare(g, p.shape[0], impl) for _, p, g, _, _ in work]
        scale = 1.0
        if self.max_grad_norm is not None or self.skip_nonfinite:
            scale = self._clip_scale(dense, [rows.grad_sumsq(g, c, nt, impl)
                                             for (_, _, g, _, _), c in zip(work, coalesced)])
            if scale is None:
                return False
        hypers = [_validate.check_group(kind, group) for _, _, _, group, _ in work]
        marks = [True if type(g) is RowGrad else g for g in grads]
        fresh = self._fresh_state(marks)
        arrays = [fresh.get(i, st) for i, st in enumerate(self._arrays)]
        if fresh or self._plan.groups is not self.param_groups:
            plan = self._new_plan(arrays, first=fresh)
        else:
            plan = self._plan
        steps = plan.param_steps(self._steps.copy())
        written = []  # nothing a row step reads may be written by this step
        for i, p in enumerate(self._params):
            if grads[i] is not None:
                written += [(f"params[{i}]", p)] + [
                    (f"state[{i}][{k!r}]", a) for k, a in arrays[i].items()]
        for i, _, g, _, _ in work:
            if steps[i] == 2 ** 63 - 1:
                raise ValueError(f"params[{i}] has taken 2**63 - 1 steps; there is no next count")
            written += [(f"grads[{i}].rows", g.rows), (f"grads[{i}].indices", g.indices)]
        _validate.check_no_overlap(written)
        if any(g is not None for g in dense) and not self._run(plan, dense, scale, nt):
            raise RuntimeError("adamcore internal error: a new plan does not cover its step")
        for (i, p, g, _, semantics), c, hyper in zip(work, coalesced, hypers):
            st = arrays[i]
            states = tuple(st.get(k) for k in kind.slots) + (None,) * (3 - len(kind.slots))
            rows.step(semantics, p, states, g, c, hyper, int(steps[i]) + 1, scale, nt, impl)
        plan.advance({i for i, _, _, _, _ in work})
        self._arrays, self._plan = arrays, plan
        return True

    # ---- state -------------------------------------------------------------

    @property
    def state(self):
        """Read-only view: ``state[i]`` is ``{"step": int, <state arrays>}``
        for each param that has stepped. The arrays are the live state; to
        replace state, use ``load_state_dict``."""
        return _StateView(self)

    def _checked_state(self, i, p, group, entry):
        """(step, arrays) from a saved state entry, checked against param ``p``
        in the format of the saved ``group``'s state_dtype (the saved arrays
        themselves: load_state_dict copies them)."""
        if not isinstance(entry, dict):
            raise TypeError(f"state[{i}] must be a dict, got {type(entry).__name__}")
        step = entry.get("step")
        if isinstance(step, np.ndarray) and step.shape == ():
            step = step.item()
        if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
            raise ValueError(f"state[{i}]['step'] must be an integer >= 0, got {step!r}")
        fmt = qstate.format_of(group.get("state_dtype"), p)
        required = set(self.ALWAYS_KEYS)
        keys = set(entry) - {"step", "qmap"}
        slots = keys & set(self.STATE_KEYS)
        if not required <= keys or keys != set(qstate.keys_of(fmt, slots)):
            raise ValueError(f"state[{i}] must hold 'step' and {sorted(required)}"
                             f"{' with their _absmax and qmap (int8 state)' if fmt is qstate.INT8 else ''}, "
                             f"got {sorted(entry)}")
        for key in sorted(keys):
            if not isinstance(entry[key], np.ndarray):
                want = (f"{qstate.storage_dtype(fmt, p.dtype)} array of shape {p.shape} like "
                        f"params[{i}]" if key in slots else "float32 array")
                raise ValueError(f"state[{i}]['{key}'] must be a {want}, got "
                                 f"{type(entry[key]).__name__}")
        qmap = entry.get("qmap")
        if isinstance(qmap, np.ndarray) and qmap.shape == () and qmap.dtype.kind == "U":
            qmap = qmap.item()  # as a checkpoint file holds it
        qstate.check_entry(i, entry, sorted(slots), fmt, p, qmap)
        return int(step), {key: entry[key] for key in sorted(keys)}

    @_serialised
    def state_dict(self):
        """A snapshot: ``{"state": {i: {...}}, "param_groups": [...]}`` of plain
        dicts, ints, floats and NumPy array copies (PyTorch's layout)."""
        steps = self._synced_steps()
        state = {i: {"step": int(steps[i]), **{k: a.copy() for k, a in st.items()},
                     **_qmap_of(st, self.KIND)}
                 for i, st in enumerate(self._arrays) if st is not None}
        return {"state": state, "param_groups": checkpoint.saved_groups(self.param_groups)}

    @_serialised
    def load_state_dict(self, state_dict, *, convert=False):
        """Restore a ``state_dict()``: checked whole against the params first,
        then applied; a restored optimizer continues bitwise identically.

        State saved with another ``state_dtype`` than a group has here is
        refused, unless ``convert``: then it is converted to this group's
        (decoded, and rounded to nearest: adamcore.qstate.convert) and the
        group keeps its state_dtype."""
        _validate.check_flag("convert", convert)
        groups, steps, arrays = self.checked_state_dict(state_dict, convert=convert)
        for key in self.STATE_KEYS:  # copies, each kind in one buffer (see _fresh_state)
            owners = [i for i, st in enumerate(arrays) if st is not None and key in st
                      and arrays[i][key].dtype == self._params[i].dtype]
            copies = _alloc.zeros_like_aligned([self._params[i] for i in owners])
            for i, a in zip(owners, copies):
                np.copyto(a, arrays[i][key])
                arrays[i][key] = a
        for i, st in enumerate(arrays):  # low-precision state: copies of its own
            for key, a in (st or {}).items():
                if key not in self.STATE_KEYS or a.dtype != self._params[i].dtype:
                    copy = _alloc.aligned_zeros(a.size, a.dtype).reshape(
                        a.shape, order="F" if a.flags.f_contiguous and not a.flags.c_contiguous
                        else "C")
                    np.copyto(copy, a)
                    st[key] = copy
        self.param_groups = groups
        self._arrays, self._steps, self._plan = arrays, steps, None
        self._plan = self._new_plan(arrays)

    def checked_state_dict(self, state_dict, convert=False):
        """``state_dict`` checked whole against this optimizer's params, as
        (its groups with these params, per-param step counts, per param the
        saved arrays or None); nothing is copied or changed (but state
        converted with ``convert``: load_state_dict). load_state_dict
        applies it; adamcore.distributed copies only its shard's part."""
        if not isinstance(state_dict, dict) or set(state_dict) != {"state", "param_groups"}:
            raise ValueError("state_dict must be a dict with keys 'state' and 'param_groups'")
        saved_groups, saved_state = state_dict["param_groups"], state_dict["state"]
        if not isinstance(saved_groups, (list, tuple)) or not isinstance(saved_state, dict):
            raise ValueError("state_dict['param_groups'] must be a list and "
                             "state_dict['state'] a dict")
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"state_dict has {len(saved_groups)} param groups, "
                             f"this optimizer has {len(self.param_groups)}")
        index, groups = {}, []
        for gi, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if not isinstance(saved, dict) or not isinstance(saved.get("params"), (list, tuple)):
                raise ValueError(f"param group {gi} of state_dict must be a dict whose "
                                 "'params' is a list of param ids")
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(f"param group {gi} has {len(saved['params'])} params in "
                                 f"state_dict, {len(group['params'])} here")
            options = {**self.ADDED_OPTIONS, **{k: v for k, v in saved.items() if k != "params"}}
            missing = set(self.defaults) - set(options)
            if missing or set(options) - set(self.defaults):
                raise ValueError(f"param group {gi} options must be {sorted(self.defaults)}")
            new = {**options, "params": group["params"]}
            self._normalize(new)
            _validate.check_group(self.KIND, new)
            saved_as = dict(new)  # the saved entries are in its format
            here = group.get("state_dtype")
            if new.get("state_dtype") != here:
                if not convert:
                    raise ValueError(
                        f"param group {gi} of state_dict has state_dtype="
                        f"{new.get('state_dtype')!r}, this optimizer's has {here!r}; pass "
                        "convert=True to convert the state (rounded to the new format), or "
                        "make the optimizer with the saved state_dtype")
                new["state_dtype"] = here
            groups.append(new)
            for saved_id, p in zip(saved["params"], group["params"]):
                if saved_id in index:
                    raise ValueError(f"state_dict lists param id {saved_id!r} more than once")
                index[saved_id] = (len(index), p, saved_as, new)
        arrays = [None] * len(self._params)
        steps = np.zeros(len(self._params), np.int64)
        for saved_id, entry in saved_state.items():
            if saved_id not in index:
                raise ValueError(f"state_dict has state for param id {saved_id!r}, "
                                 "which no param group lists")
            i, p, saved_as, group = index[saved_id]
            steps[i], arrays[i] = self._checked_state(i, p, saved_as, entry)
            want = qstate.format_of(group.get("state_dtype"), p)
            if qstate.format_of(saved_as.get("state_dtype"), p) != want:
                arrays[i] = qstate.convert(arrays[i], self.STATE_KEYS, want, p)
        return groups, steps, arrays

    # ---- checkpoints --------------------------------------------------------

    @_serialised
    def save(self, path):
        """Write hyperparameters, step counts and all state to the ``.npz`` file
        ``path``, atomically (see adamcore.checkpoint)."""
        checkpoint.save(self, path)

    @classmethod
    def load(cls, path, params, **kwargs):
        """An optimizer over ``params`` (a flat list in the saved order, or the
        saved groups) restored from ``save(path)``, continuing bitwise
        identically; ``kwargs`` such as ``n_threads`` and ``impl`` go to the
        constructor. A file that is damaged or does not fit ``params`` raises
        ``ValueError`` (see adamcore.checkpoint)."""
        return checkpoint.load(cls, path, params, **kwargs)

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for gi, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {gi}")
            lines += [f"    {k}: {group[k]}" for k in sorted(group) if k != "params"]
        return "\n".join(lines + [")"])
