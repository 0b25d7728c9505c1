"""Bad input to every optimizer of the registry (adamcore.kinds; Adam's own
cases are in test_bad_input.py, the raw entry points' in
test_bucket_bad_input.py): the right exception, a message naming the
argument, the same exception and message from impl="c" and impl="numpy", and
not one byte of any param, state array or grad written (nor a step count
moved).
"""

import math

import numpy as np
import pytest

import adamcore
from adamcore import _impl
from helpers import (
    IMPL_PARAMS,
    OPTIMIZERS,
    assert_optimizer_snapshot_equal,
    assert_unchanged,
    optimizer_snapshot,
    requires_kernel,
    snapshot,
)

IMPLS = ["c", "numpy"]
KERNEL = _impl.kernel()
CLASSES = {cls.__name__: cls for cls in OPTIMIZERS.values()}
NAN, INF = math.nan, math.inf


# ---- construction: hyperparameters -------------------------------------------------

def _real_cases(cls, name, pattern, values=(-0.1, NAN, INF, -INF)):
    return [(cls, f"{name}={v}", {name: v}, ValueError, pattern) for v in values]


def _type_cases(cls, name, what, values=("0.1", None, True)):
    return [(cls, f"{name}={v!r}", {name: v}, TypeError,
             rf"^{name} must be {what}, got {type(v).__name__}") for v in values]


CTOR_CASES = []
for _cls in CLASSES:
    CTOR_CASES += _real_cases(_cls, "lr", r"^Invalid learning rate: .* \(lr must be finite")
    CTOR_CASES += _type_cases(_cls, "lr", "a real number")
    CTOR_CASES += _real_cases(_cls, "weight_decay",
                              r"^Invalid weight_decay value: .*weight_decay must be finite")
    CTOR_CASES += _type_cases(_cls, "weight_decay", "a real number", ("0", None))
    CTOR_CASES += _type_cases(_cls, "maximize", "a bool", (1, "yes", None, 0.0))
    CTOR_CASES += [
        (_cls, "n_threads=0", dict(n_threads=0), ValueError, r"^n_threads must be None, >= 1"),
        (_cls, "n_threads='2'", dict(n_threads="2"), TypeError,
         r"^n_threads must be an integer or None, got str"),
        (_cls, "n_threads=1.0", dict(n_threads=1.0), TypeError,
         r"^n_threads must be an integer or None, got float"),
        (_cls, "max_grad_norm=0", dict(max_grad_norm=0.0), ValueError,
         r"^max_grad_norm must be None or > 0"),
        (_cls, "max_grad_norm=nan", dict(max_grad_norm=NAN), ValueError,
         r"^max_grad_norm must be None or > 0"),
        (_cls, "max_grad_norm='1'", dict(max_grad_norm="1"), TypeError,
         r"^max_grad_norm must be a real number"),
        (_cls, "skip_nonfinite=1", dict(skip_nonfinite=1), TypeError,
         r"^skip_nonfinite must be a bool, got int"),
        (_cls, "impl=fortran", dict(impl="fortran"), ValueError, r"^impl must be one of"),
    ]
CTOR_CASES += (
    _real_cases("SGD", "momentum", r"^Invalid momentum value: .*momentum must be finite")
    + _type_cases("SGD", "momentum", "a real number")
    + _real_cases("SGD", "dampening", r"^Invalid dampening value: .*dampening must be finite",
                  (NAN, INF, -INF))
    + _type_cases("SGD", "dampening", "a real number", ("0", None, False))
    + _type_cases("SGD", "nesterov", "a bool", (1, "True", None))
    + [("SGD", "nesterov-momentum0", dict(nesterov=True), ValueError,
        r"^Nesterov momentum requires a momentum and zero dampening"),
       ("SGD", "nesterov-dampening0.1", dict(nesterov=True, momentum=0.9, dampening=0.1),
        ValueError, r"^Nesterov momentum requires a momentum and zero dampening"),
       ("SGD", "nesterov-dampening-neg", dict(nesterov=True, momentum=0.9, dampening=-0.1),
        ValueError, r"^Nesterov momentum requires a momentum and zero dampening"),
       ("SGD", "nesterov-momentum-neg", dict(nesterov=True, momentum=-0.9), ValueError,
        r"^Invalid momentum value")]
    + _real_cases("RMSprop", "alpha", r"^Invalid alpha value: .*alpha must be finite")
    + _type_cases("RMSprop", "alpha", "a real number")
    + _real_cases("RMSprop", "eps", r"^Invalid epsilon value: .*eps must be finite")
    + _type_cases("RMSprop", "eps", "a real number")
    + _real_cases("RMSprop", "momentum", r"^Invalid momentum value")
    + _type_cases("RMSprop", "momentum", "a real number", ("0.9",))
    + _type_cases("RMSprop", "centered", "a bool", (1, "yes", None))
    + _real_cases("Adagrad", "lr_decay", r"^Invalid lr_decay value: .*lr_decay must be finite")
    + _type_cases("Adagrad", "lr_decay", "a real number")
    + _real_cases("Adagrad", "initial_accumulator_value",
                  r"^Invalid initial_accumulator_value value: .*initial_accumulator_value must")
    + _type_cases("Adagrad", "initial_accumulator_value", "a real number")
    + _real_cases("Adagrad", "eps", r"^Invalid epsilon value")
    + _type_cases("Adagrad", "eps", "a real number", (None,))
    + _real_cases("AdaBelief", "eps", r"^Invalid epsilon value")
    + _type_cases("AdaBelief", "eps", "a real number")
    + _type_cases("AdaBelief", "amsgrad", "a bool", (1, None))
    + _type_cases("AdaBelief", "decoupled_weight_decay", "a bool", (0, "no"))
)
for _i, _values in enumerate([(1.0, 0.999), (-0.1, 0.999), (NAN, 0.999), (INF, 0.9)]):
    CTOR_CASES.append(("AdaBelief", f"beta1={_values[0]}", dict(betas=_values), ValueError,
                       r"^Invalid beta parameter at index 0.*beta1 must be in \[0, 1\)"))
for _values in [(0.9, 1.0), (0.9, -1e-9), (0.9, NAN), (0.9, 2.0)]:
    CTOR_CASES.append(("AdaBelief", f"beta2={_values[1]}", dict(betas=_values), ValueError,
                       r"^Invalid beta parameter at index 1.*beta2 must be in \[0, 1\)"))
CTOR_CASES += [
    ("AdaBelief", "betas-scalar", dict(betas=0.9), TypeError, r"^betas must be a pair"),
    ("AdaBelief", "betas-1", dict(betas=(0.9,)), TypeError, r"^betas must be a pair"),
    ("AdaBelief", "betas-3", dict(betas=(0.9, 0.99, 0.999)), TypeError, r"^betas must be a pair"),
    ("AdaBelief", "betas-str", dict(betas=("0.9", 0.999)), TypeError,
     r"^beta1 must be a real number, got str"),
    ("AdaBelief", "betas-bool", dict(betas=(0.9, True)), TypeError,
     r"^beta2 must be a real number, got bool"),
]


def _ctor_id(case):
    return f"{case[0]}-{case[1]}"


def _params():
    return [np.arange(8, dtype=np.float32), np.ones((3, 4), np.float64)]


def _construct(cls_name, options, impl):
    params = _params()
    snap = snapshot(params)
    try:
        CLASSES[cls_name](params, **{"impl": impl, **options})
    finally:
        assert_unchanged(params, snap, "param")


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("case", CTOR_CASES, ids=_ctor_id)
def test_constructor_refuses(case, impl):
    cls_name, _, options, exc, pattern = case
    with pytest.raises(exc, match=pattern):
        _construct(cls_name, options, impl)


@requires_kernel
@pytest.mark.parametrize("case", CTOR_CASES, ids=_ctor_id)
def test_constructor_same_error_from_both_impls(case):
    cls_name, _, options, exc, _ = case
    errors = []
    for impl in IMPLS:
        with pytest.raises(exc) as info:
            _construct(cls_name, options, impl)
        errors.append(info.value)
    assert type(errors[0]) is type(errors[1])
    assert str(errors[0]) == str(errors[1])


@pytest.mark.parametrize("cls_name", list(CLASSES))
def test_param_group_options_checked(cls_name):
    opt = CLASSES[cls_name]([np.zeros(3, np.float32)])
    with pytest.raises(ValueError, match=r"^Invalid learning rate"):
        opt.add_param_group({"params": [np.zeros(2, np.float32)], "lr": -1.0})
    with pytest.raises(ValueError, match=r"^unknown option\(s\) in param group: \['bogus'\]"):
        opt.add_param_group({"params": [np.zeros(2, np.float32)], "bogus": 1})
    with pytest.raises(ValueError, match=r"^unknown option\(s\) in param group"):
        opt.add_param_group({"params": [np.zeros(2, np.float32)], "amsgrad_typo": True})
    assert len(opt.param_groups) == 1


@pytest.mark.parametrize("cls_name", list(CLASSES))
def test_constructor_bad_params(cls_name):
    cls = CLASSES[cls_name]
    ro = np.zeros(4, np.float32)
    ro.flags.writeable = False
    cases = [
        ([], ValueError, r"empty parameter list"),
        (np.zeros(3), TypeError, r"got a single array"),
        ([np.zeros(3, np.int64)], TypeError, r"^params\[0\] must have dtype float32 or float64"),
        ([np.zeros(3, np.float16)], TypeError, r"^params\[0\] must have dtype"),
        ([[0.0, 1.0]], TypeError, r"^params\[0\] must be a numpy.ndarray, got list"),
        ([ro], ValueError, r"^params\[0\] is read-only"),
        ([np.zeros(8, np.float32)[::2]], ValueError, r"^params\[0\] must be C- or F-contiguous"),
    ]
    shared = np.zeros(8, np.float32)
    cases.append(([shared[:5], shared[4:]], ValueError, r"overlaps params\[0\] in memory"))
    cases.append(([shared, shared], ValueError, r"overlaps params\[0\] in memory"))
    for params, exc, pattern in cases:
        with pytest.raises(exc, match=pattern):
            cls(params)


# ---- step time: bad arrays change nothing ------------------------------------------

#: options under which each class uses every one of its state slots
FULL_OPTIONS = {
    "Adam": dict(amsgrad=True, weight_decay=0.1),
    "SGD": dict(lr=0.1, momentum=0.9, weight_decay=0.1),
    "RMSprop": dict(momentum=0.9, centered=True),
    "Adagrad": dict(initial_accumulator_value=0.1),
    "AdaBelief": dict(amsgrad=True, weight_decay=0.1),
}
assert set(FULL_OPTIONS) == set(CLASSES), "a new kind needs its FULL_OPTIONS entry here"
SHAPES = [(8,), (3, 4), (5,)]  # float32, float32, float64


def _make_opt(cls_name, impl, warm_steps):
    rng = np.random.default_rng(0)
    params = [rng.standard_normal(SHAPES[0]).astype(np.float32),
              rng.standard_normal(SHAPES[1]).astype(np.float32),
              rng.standard_normal(SHAPES[2])]
    opt = CLASSES[cls_name](params, **FULL_OPTIONS[cls_name], impl=impl)
    for _ in range(warm_steps):
        opt.step([rng.standard_normal(p.shape).astype(p.dtype) for p in params])
    return opt, params


def _good_grads(params):
    rng = np.random.default_rng(1)
    return [rng.standard_normal(p.shape).astype(p.dtype) for p in params]


def _first_key(cls_name):
    return CLASSES[cls_name].STATE_KEYS[0]


def _strided(n, dtype=np.float32):
    return np.ones(2 * n, dtype)[::2]


def _unaligned(n, dtype=np.float32):
    a = np.zeros(n * np.dtype(dtype).itemsize + 1, np.uint8)[1:].view(dtype)
    assert not a.flags.aligned
    return a


def _replace(k, make):
    """A grads builder: good grads with grads[k] = make(opt, params)."""
    def build(opt, params):
        grads = _good_grads(params)
        grads[k] = make(opt, params)
        return grads
    return build


# (id, grads builder (opt, params) -> grads, exception, message regex); params are
# float32 (8,), float32 (3, 4), float64 (5,).
GRAD_CASES = [
    ("grad-float64-for-float32", _replace(0, lambda o, p: np.ones(8)), TypeError,
     r"^grads\[0\] has dtype float64 but params\[0\] has dtype float32$"),
    ("grad-float32-for-float64", _replace(2, lambda o, p: np.ones(5, np.float32)), TypeError,
     r"^grads\[2\] has dtype float32 but params\[2\] has dtype float64$"),
    ("grad-int32", _replace(1, lambda o, p: np.ones((3, 4), np.int32)), TypeError,
     r"^grads\[1\] has dtype int32 but params\[1\] has dtype float32$"),
    ("grad-float16", _replace(0, lambda o, p: np.ones(8, np.float16)), TypeError,
     r"^grads\[0\] has dtype float16 but params\[0\] has dtype float32$"),
    ("grad-shape", _replace(1, lambda o, p: np.ones(12, np.float32)), ValueError,
     r"^grads\[1\] has shape \(12,\) but params\[1\] has shape \(3, 4\)$"),
    ("grad-shape-transposed", _replace(1, lambda o, p: np.ones((4, 3), np.float32)), ValueError,
     r"^grads\[1\] has shape \(4, 3\) but params\[1\] has shape \(3, 4\)$"),
    ("grad-noncontiguous", _replace(0, lambda o, p: _strided(8)), ValueError,
     r"^grads\[0\] must be C-contiguous like params\[0\]"),
    ("grad-F-order", _replace(1, lambda o, p: np.asfortranarray(np.ones((3, 4), np.float32))),
     ValueError, r"^grads\[1\] must be C-contiguous like params\[1\]"),
    ("grad-unaligned", _replace(2, lambda o, p: _unaligned(5, np.float64)), ValueError,
     r"^grads\[2\] is not aligned"),
    ("grad-list", _replace(0, lambda o, p: [0.0] * 8), TypeError,
     r"^grads\[0\] must be a numpy.ndarray, got list$"),
    ("grad-scalar", _replace(2, lambda o, p: 1.0), TypeError,
     r"^grads\[2\] must be a numpy.ndarray, got float$"),
    ("grad-is-param", _replace(0, lambda o, p: p[0]), ValueError,
     r"^(grads\[0\]|params\[0\]) overlaps (grads\[0\]|params\[0\]) in memory"),
    ("grad-is-other-param", _replace(0, lambda o, p: p[1].reshape(12)[:8]), ValueError,
     r"overlaps .* in memory"),
    ("grad-views-param", _replace(1, lambda o, p: p[1][:, :]), ValueError,
     r"^(grads\[1\]|params\[1\]) overlaps (grads\[1\]|params\[1\]) in memory"),
]

GRAD_CASES_WITH_STATE = [  # need the state: only after a warm-up step
    ("grad-is-state", lambda cls_name: _replace(0, lambda o, p: o.state[0][_first_key(cls_name)]),
     ValueError, r"overlaps .* in memory; every buffer must be distinct"),
    ("grad-is-other-state",
     lambda cls_name: _replace(2, lambda o, p: o.state[2][CLASSES[cls_name].STATE_KEYS[-1]]),
     ValueError, r"overlaps .* in memory; every buffer must be distinct"),
]


def _assert_refused_unchanged(opt, grads, exc, pattern):
    """The step raises; params, state, step counts and grads are untouched."""
    before = optimizer_snapshot(opt)
    n_state = len(opt.state)
    gsnap = snapshot(grads)
    skipped = opt.skipped_steps
    with pytest.raises(exc, match=pattern) as info:
        opt.step(grads)
    assert_optimizer_snapshot_equal(optimizer_snapshot(opt), before, "after a refused step")
    assert len(opt.state) == n_state
    assert_unchanged(grads, gsnap, "grad")
    assert opt.skipped_steps == skipped
    return info.value


def _cases_for(warm):
    cases = [(c[0], lambda cls_name, b=c[1]: b) + c[2:] for c in GRAD_CASES]
    if warm:
        cases += GRAD_CASES_WITH_STATE
    return cases


def _grad_case_params():
    for warm in (0, 2):
        for case in _cases_for(warm):
            for cls_name in CLASSES:
                yield pytest.param(cls_name, warm, case, id=f"{cls_name}-warm{warm}-{case[0]}")


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("cls_name, warm, case", list(_grad_case_params()))
def test_bad_grad_changes_nothing(cls_name, warm, case, impl):
    _, builder, exc, pattern = case
    opt, params = _make_opt(cls_name, impl, warm)
    _assert_refused_unchanged(opt, builder(cls_name)(opt, params), exc, pattern)
    # ... and the optimizer still works afterwards, from where it was.
    opt.step(_good_grads(params))
    assert all(opt.state[i]["step"] == warm + 1 for i in range(3))


@requires_kernel
@pytest.mark.parametrize("cls_name, warm, case", list(_grad_case_params()))
def test_bad_grad_same_error_from_both_impls(cls_name, warm, case):
    _, builder, exc, pattern = case
    errors = []
    for impl in IMPLS:
        opt, params = _make_opt(cls_name, impl, warm)
        errors.append(_assert_refused_unchanged(opt, builder(cls_name)(opt, params), exc,
                                                pattern))
    assert type(errors[0]) is type(errors[1])
    assert str(errors[0]) == str(errors[1])


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("warm", [0, 2], ids=lambda w: f"warm{w}")
@pytest.mark.parametrize("cls_name", list(CLASSES))
def test_wrong_number_of_grads(cls_name, warm, impl):
    opt, params = _make_opt(cls_name, impl, warm)
    grads = _good_grads(params)
    _assert_refused_unchanged(opt, grads[:2], ValueError,
                              r"^expected 3 grads \(one per param, None to skip\), got 2$")
    _assert_refused_unchanged(opt, grads + [grads[0].copy()], ValueError,
                              r"^expected 3 grads .* got 4$")
    _assert_refused_unchanged(opt, [], ValueError, r"^expected 3 grads .* got 0$")
    _assert_refused_unchanged(opt, grads[0], TypeError,
                              r"^step\(\) got one array but the optimizer has 3 params")


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("warm", [0, 2], ids=lambda w: f"warm{w}")
@pytest.mark.parametrize("cls_name", list(CLASSES))
def test_readonly_param_changes_nothing(cls_name, warm, impl):
    opt, params = _make_opt(cls_name, impl, warm)
    params[1].flags.writeable = False
    _assert_refused_unchanged(opt, _good_grads(params), ValueError,
                              r"^params\[1\] is read-only; it is updated in place")


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("cls_name", list(CLASSES))
def test_readonly_grad_is_accepted(cls_name, impl):
    a, pa = _make_opt(cls_name, impl, 1)
    b, pb = _make_opt(cls_name, impl, 1)
    grads = _good_grads(pa)
    ro = [g.copy() for g in grads]
    for g in ro:
        g.flags.writeable = False
    a.step(grads)
    b.step(ro)
    assert_optimizer_snapshot_equal(optimizer_snapshot(a), optimizer_snapshot(b))


# Group options set to bad values after construction (as a schedule or a user
# may): refused at the next step, before anything changes. (Flags set later are
# taken by truth value, as Adam's are, so they are not listed.)
GROUP_CASES = [
    ("SGD", "lr", -1.0, ValueError, r"^Invalid learning rate"),
    ("SGD", "lr", NAN, ValueError, r"^Invalid learning rate"),
    ("SGD", "momentum", -0.5, ValueError, r"^Invalid momentum value"),
    ("SGD", "dampening", INF, ValueError, r"^Invalid dampening value"),
    ("SGD", "weight_decay", "0.1", TypeError, r"^weight_decay must be a real number"),
    ("RMSprop", "alpha", NAN, ValueError, r"^Invalid alpha value"),
    ("RMSprop", "eps", -1.0, ValueError, r"^Invalid epsilon value"),
    ("Adagrad", "lr_decay", -0.1, ValueError, r"^Invalid lr_decay value"),
    ("Adagrad", "eps", INF, ValueError, r"^Invalid epsilon value"),
    ("AdaBelief", "betas", (0.9, 1.0), ValueError, r"^Invalid beta parameter at index 1"),
    ("AdaBelief", "betas", (1.0, 0.9), ValueError, r"^Invalid beta parameter at index 0"),
    ("AdaBelief", "weight_decay", -1.0, ValueError, r"^Invalid weight_decay value"),
]


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("warm", [0, 2], ids=lambda w: f"warm{w}")
@pytest.mark.parametrize("case", GROUP_CASES, ids=lambda c: f"{c[0]}-{c[1]}={c[2]!r}")
def test_bad_group_option_set_later(case, warm, impl):
    cls_name, key, value, exc, pattern = case
    opt, params = _make_opt(cls_name, impl, warm)
    opt.param_groups[0][key] = value
    _assert_refused_unchanged(opt, _good_grads(params), exc, pattern)


@requires_kernel
@pytest.mark.parametrize("case", GROUP_CASES, ids=lambda c: f"{c[0]}-{c[1]}={c[2]!r}")
def test_bad_group_option_same_error_from_both_impls(case):
    cls_name, key, value, exc, pattern = case
    errors = []
    for impl in IMPLS:
        opt, params = _make_opt(cls_name, impl, 2)
        opt.param_groups[0][key] = value
        errors.append(_assert_refused_unchanged(opt, _good_grads(params), exc, pattern))
    assert (type(errors[0]), str(errors[0])) == (type(errors[1]), str(errors[1]))


@pytest.mark.parametrize("impl", IMPL_PARAMS)
def test_bad_grad_in_second_group_changes_first_group_nothing(impl):
    """Two groups, the bad grad in the last: the first group's good grads must
    not have been applied."""
    rng = np.random.default_rng(3)
    p = [rng.standard_normal(6).astype(np.float32) for _ in range(3)]
    opt = adamcore.SGD([{"params": p[:2]}, {"params": p[2:], "lr": 0.5}], lr=0.1,
                       momentum=0.9, impl=impl)
    opt.step([np.ones(6, np.float32) for _ in range(3)])
    grads = [np.ones(6, np.float32), np.ones(6, np.float32), np.ones(6)]
    _assert_refused_unchanged(opt, grads, TypeError, r"^grads\[2\] has dtype float64")
