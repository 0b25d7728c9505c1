"""Bad input: the right exception, a message naming the argument, the same
message from impl="c" and impl="numpy", and not one byte of any array written.

Also "both raise or both agree": odd-but-valid inputs must give the same
outcome from both implementations.
"""

import math

import numpy as np
import pytest

import adamcore
from adamcore import functional
from helpers import (
    IMPL_PARAMS,
    assert_optimizer_snapshot_equal,
    assert_same_values,
    assert_unchanged,
    optimizer_snapshot,
    requires_kernel,
    snapshot,
)

IMPLS = ["c", "numpy"]  # both, in that order, where a test compares them
N = 8
GOOD = dict(step=1, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8)
NAMES = ("param", "grad", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")


def arrays(dtype=np.float32, shape=(N,), order="C", amsgrad=True, seed=0):
    """Fresh, valid, distinct arrays: param/grad random, state small positive."""
    rng = np.random.default_rng(seed)

    def make(scale=1.0, positive=False):
        x = rng.standard_normal(shape) * scale
        x = np.abs(x) if positive else x
        return np.asarray(x, order=order).astype(dtype, order=order)

    out = dict(param=make(), grad=make(), exp_avg=make(0.1), exp_avg_sq=make(0.01, True))
    out["max_exp_avg_sq"] = make(0.01, True) if amsgrad else None
    return out


def call(a, impl, **hyper):
    functional.adam_step(a["param"], a["grad"], a["exp_avg"], a["exp_avg_sq"],
                         max_exp_avg_sq=a["max_exp_avg_sq"], impl=impl, **{**GOOD, **hyper})


def with_(name, value, **kw):
    a = arrays(**kw)
    a[name] = value
    return a


def readonly(a):
    a = a.copy()
    a.flags.writeable = False
    return a


def unaligned(n=N, dtype=np.float32, fill=1.0):
    itemsize = np.dtype(dtype).itemsize
    a = np.zeros(itemsize * n + 1, np.uint8)[1:].view(dtype)
    a[...] = fill
    assert not a.flags.aligned
    return a


def strided(n=N, dtype=np.float32):
    return np.random.default_rng(1).standard_normal(2 * n).astype(dtype)[::2]


def one_buffer(*slices, dtype=np.float32):
    """Views of one buffer, for aliasing cases."""
    buf = np.random.default_rng(2).standard_normal(4 * N).astype(dtype)
    return [buf[s] for s in slices]


def aliased(**pairs):
    """arrays() with some entries replaced by views given as name -> array."""
    a = arrays()
    a.update(pairs)
    return a


def _same_as(name, other):
    a = arrays()
    a[name] = a[other]
    return a


def _overlap(first, second, lo, hi):
    x, y = one_buffer(slice(0, N), slice(lo, hi))
    return aliased(**{first: x, second: y})


def _dtype_all(dtype):
    a = arrays(dtype=np.float64)
    return {k: (v.astype(dtype) if v is not None else None) for k, v in a.items()}


def _byteswapped(names):
    a = arrays(dtype=np.float32)
    return {k: v.astype(np.dtype(np.float32).newbyteorder(">") if k in names else v.dtype)
            for k, v in a.items()}


# (id, arrays builder, hyper overrides, exception, message regex)
ARRAY_CASES = [
    ("param-noncontiguous", lambda: with_("param", strided()), {}, ValueError,
     r"^param must be C- or F-contiguous"),
    ("grad-noncontiguous", lambda: with_("grad", strided()), {}, ValueError,
     r"^grad must be C-contiguous like param"),
    ("exp_avg-noncontiguous", lambda: with_("exp_avg", strided()), {}, ValueError,
     r"^exp_avg must be C-contiguous like param"),
    ("exp_avg_sq-noncontiguous", lambda: with_("exp_avg_sq", strided()), {}, ValueError,
     r"^exp_avg_sq must be C-contiguous like param"),
    ("max_exp_avg_sq-noncontiguous", lambda: with_("max_exp_avg_sq", strided()), {}, ValueError,
     r"^max_exp_avg_sq must be C-contiguous like param"),
    ("param-readonly", lambda: with_("param", readonly(arrays()["param"])), {}, ValueError,
     r"^param is read-only"),
    ("exp_avg-readonly", lambda: with_("exp_avg", readonly(arrays()["exp_avg"])), {}, ValueError,
     r"^exp_avg is read-only"),
    ("exp_avg_sq-readonly", lambda: with_("exp_avg_sq", readonly(arrays()["exp_avg_sq"])), {},
     ValueError, r"^exp_avg_sq is read-only"),
    ("max_exp_avg_sq-readonly",
     lambda: with_("max_exp_avg_sq", readonly(arrays()["max_exp_avg_sq"])), {}, ValueError,
     r"^max_exp_avg_sq is read-only"),
    ("param-float16", lambda: _dtype_all(np.float16), {}, TypeError,
     r"^param must have dtype float32 or float64, got float16"),
    ("param-int32", lambda: _dtype_all(np.int32), {}, TypeError,
     r"^param must have dtype float32 or float64, got int32"),
    ("param-int64", lambda: _dtype_all(np.int64), {}, TypeError,
     r"^param must have dtype float32 or float64, got int64"),
    ("param-object", lambda: _dtype_all(object), {}, TypeError,
     r"^param must have dtype float32 or float64, got object"),
    ("param-complex64", lambda: _dtype_all(np.complex64), {}, TypeError,
     r"^param must have dtype float32 or float64, got complex64"),
    ("grad-float64-param-float32", lambda: with_("grad", np.ones(N)), {}, TypeError,
     r"^grad has dtype float64 but param has dtype float32"),
    ("exp_avg-float32-param-float64",
     lambda: with_("exp_avg", np.zeros(N, np.float32), dtype=np.float64), {}, TypeError,
     r"^exp_avg has dtype float32 but param has dtype float64"),
    ("max_exp_avg_sq-float64-param-float32", lambda: with_("max_exp_avg_sq", np.zeros(N)), {},
     TypeError, r"^max_exp_avg_sq has dtype float64 but param has dtype float32"),
    ("grad-shape", lambda: with_("grad", np.ones(N + 1, np.float32)), {}, ValueError,
     r"^grad has shape \(9,\) but param has shape \(8,\)"),
    ("exp_avg_sq-shape-2d", lambda: with_("exp_avg_sq", np.zeros((2, 4), np.float32)), {},
     ValueError, r"^exp_avg_sq has shape \(2, 4\) but param has shape \(8,\)"),
    ("max_exp_avg_sq-shape-0d", lambda: with_("max_exp_avg_sq", np.zeros((), np.float32)), {},
     ValueError, r"^max_exp_avg_sq has shape \(\) but param has shape \(8,\)"),
    ("param-C-grad-F", lambda: with_("grad", np.asfortranarray(np.ones((3, 5), np.float32)),
                                     shape=(3, 5)), {}, ValueError,
     r"^grad must be C-contiguous like param"),
    ("param-F-exp_avg-C", lambda: with_("exp_avg", np.zeros((3, 5), np.float32), shape=(3, 5),
                                        order="F"), {}, ValueError,
     r"^exp_avg must be F-contiguous like param"),
    ("param-is-grad", lambda: _same_as("grad", "param"), {}, ValueError,
     r"^(param|grad) overlaps (param|grad) in memory"),
    ("exp_avg-is-exp_avg_sq", lambda: _same_as("exp_avg_sq", "exp_avg"), {}, ValueError,
     r"^(exp_avg|exp_avg_sq) overlaps (exp_avg|exp_avg_sq) in memory"),
    ("max_exp_avg_sq-is-param", lambda: _same_as("max_exp_avg_sq", "param"), {}, ValueError,
     r"^(param|max_exp_avg_sq) overlaps (param|max_exp_avg_sq) in memory"),
    ("param-grad-overlapping-views", lambda: _overlap("param", "grad", N // 2, N // 2 + N), {},
     ValueError, r"^(param|grad) overlaps (param|grad) in memory"),
    ("exp_avg-exp_avg_sq-overlap-one-element",
     lambda: _overlap("exp_avg", "exp_avg_sq", N - 1, 2 * N - 1), {}, ValueError,
     r"^(exp_avg|exp_avg_sq) overlaps (exp_avg|exp_avg_sq) in memory"),
    ("param-list", lambda: with_("param", [0.0] * N), {}, TypeError,
     r"^param must be a numpy.ndarray, got list"),
    ("grad-list", lambda: with_("grad", [0.0] * N), {}, TypeError,
     r"^grad must be a numpy.ndarray, got list"),
    ("exp_avg-none", lambda: with_("exp_avg", None), {}, TypeError,
     r"^exp_avg must be a numpy.ndarray, got NoneType"),
    ("param-unaligned", lambda: with_("param", unaligned()), {}, ValueError,
     r"^param is not aligned"),
    ("grad-unaligned", lambda: with_("grad", unaligned()), {}, ValueError,
     r"^grad is not aligned"),
    ("exp_avg_sq-unaligned", lambda: with_("exp_avg_sq", unaligned()), {}, ValueError,
     r"^exp_avg_sq is not aligned"),
    ("param-big-endian", lambda: _byteswapped(NAMES), {}, TypeError,
     r"^param must have dtype float32 or float64, got >f4"),
    ("grad-big-endian", lambda: _byteswapped(("grad",)), {}, TypeError,
     r"^grad has dtype >f4 but param has dtype float32"),
    ("param-unaligned-float64", lambda: with_("param", unaligned(dtype=np.float64),
                                              dtype=np.float64), {}, ValueError,
     r"^param is not aligned"),
]

HYPER_CASES = []
for value in (math.nan, math.inf, -math.inf, -0.1):
    HYPER_CASES.append((f"lr{value}", dict(lr=value), ValueError, r"^Invalid learning rate"))
for index, name in enumerate(("beta1", "beta2")):
    for value in (1.0, -0.1, math.nan, 1.5, math.inf):
        HYPER_CASES.append((f"{name}-{value}", {name: value}, ValueError,
                            rf"^Invalid beta parameter at index {index}.*{name}"))
for value in (-1e-8, math.nan, math.inf):
    HYPER_CASES.append((f"eps{value}", dict(eps=value), ValueError, r"^Invalid epsilon value"))
for value in (-0.1, math.nan, math.inf):
    HYPER_CASES.append((f"weight_decay{value}", dict(weight_decay=value), ValueError,
                        r"^Invalid weight_decay value"))
HYPER_CASES += [
    ("lr-str", dict(lr="0.1"), TypeError, r"^lr must be a real number, got str"),
    ("lr-none", dict(lr=None), TypeError, r"^lr must be a real number"),
    ("beta1-bool", dict(beta1=True), TypeError, r"^beta1 must be a real number, got bool"),
    ("eps_mode-foo", dict(eps_mode="foo"), ValueError, r"^eps_mode must be 'torch' or 'keras'"),
    ("step0", dict(step=0), ValueError, r"^step must be in \[1, 2\*\*63\)"),
    ("step-negative", dict(step=-3), ValueError, r"^step must be in \[1, 2\*\*63\)"),
    ("step1.5", dict(step=1.5), TypeError, r"^step must be an integer, got float"),
    ("step-true", dict(step=True), TypeError, r"^step must be an integer, got bool"),
    ("n_threads0", dict(n_threads=0), ValueError, r"^n_threads must be None, >= 1, or negative"),
    ("n_threads-str", dict(n_threads="2"), TypeError,
     r"^n_threads must be an integer or None, got str"),
    ("n_threads-bool", dict(n_threads=True), TypeError,
     r"^n_threads must be an integer or None, got bool"),
    ("n_threads-float", dict(n_threads=2.0), TypeError,
     r"^n_threads must be an integer or None, got float"),
    # Found by tests/fuzz_binding.py: each once passed one implementation only.
    ("maximize-array", dict(maximize=np.array([1, 2])), TypeError,
     r"^maximize must be a bool, got ndarray"),
    ("decoupled-int", dict(decoupled=1), TypeError, r"^decoupled must be a bool, got int"),
    ("grad_scale-inf", dict(grad_scale=math.inf), ValueError,
     r"^grad_scale must be finite and >= 0 \(or NaN\)"),
    ("grad_scale-huge-int", dict(grad_scale=10 ** 400), ValueError,
     r"^grad_scale must be finite and >= 0 \(or NaN\)"),
]


def all_arrays(a):
    """Every array a case holds, including the bases of views (so a write through
    any alias shows)."""
    out = {}
    for k, v in a.items():
        if isinstance(v, np.ndarray):
            out[k] = v
            if v.base is not None and isinstance(v.base, np.ndarray):
                out[k + ".base"] = v.base
    return out


def _raise_case(build, hyper, exc, pattern, impl):
    a = build()
    arrs = all_arrays(a)
    snap = snapshot(arrs)
    with pytest.raises(exc, match=pattern) as info:
        call(a, impl, **hyper)
    assert_unchanged(arrs, snap)
    return info.value


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("case", ARRAY_CASES, ids=lambda c: c[0])
def test_bad_array(case, impl):
    _, build, hyper, exc, pattern = case
    _raise_case(build, hyper, exc, pattern, impl)


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("case", HYPER_CASES, ids=lambda c: c[0])
def test_bad_hyperparameter(case, impl):
    _, hyper, exc, pattern = case
    _raise_case(arrays, hyper, exc, pattern, impl)


@requires_kernel
@pytest.mark.parametrize("case", ARRAY_CASES + [(c[0], arrays) + c[1:] for c in HYPER_CASES],
                         ids=lambda c: c[0])
def test_same_error_from_both_impls(case):
    _, build, hyper, exc, pattern = case
    errors = [_raise_case(build, hyper, exc, pattern, impl) for impl in IMPLS]
    assert type(errors[0]) is type(errors[1])
    assert str(errors[0]) == str(errors[1])


def test_bad_impl():
    a = arrays()
    arrs = all_arrays(a)
    snap = snapshot(arrs)
    with pytest.raises(ValueError, match=r"^impl must be one of .*'fortran'"):
        call(a, "fortran")
    assert_unchanged(arrs, snap)


@pytest.mark.parametrize("impl", IMPL_PARAMS)
def test_readonly_grad_is_accepted(impl):
    a, b = arrays(), arrays()
    b["grad"] = readonly(b["grad"])
    snap = snapshot([b["grad"]])
    call(a, impl, step=1)
    call(b, impl, step=1)
    assert_unchanged([b["grad"]], snap)
    for k in NAMES:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(a["param"], arrays()["param"])  # it did step


@pytest.mark.parametrize("impl", IMPL_PARAMS)
def test_inputs_never_modified_on_success(impl):
    """A good step writes param and state only: grad is never touched."""
    a = arrays()
    snap = snapshot([a["grad"]])
    call(a, impl, maximize=True, weight_decay=0.1)
    assert_unchanged([a["grad"]], snap, "grad")


# ---- the optimizer ----------------------------------------------------------------------

def _params(k=3, dtype=np.float32):
    rng = np.random.default_rng(k)
    return [rng.standard_normal(N + i).astype(dtype) for i in range(k)]


def _overlapping_params():
    buf = np.zeros(2 * N, np.float32)
    return [buf[:N], buf[N // 2: N // 2 + N]]


CONSTRUCTOR_CASES = [
    ("lr-negative", dict(lr=-1e-3), ValueError, r"^Invalid learning rate: -0.001"),
    ("lr-nan", dict(lr=math.nan), ValueError, r"^Invalid learning rate"),
    ("lr-inf", dict(lr=math.inf), ValueError, r"^Invalid learning rate"),
    ("beta1-1.0", dict(betas=(1.0, 0.999)), ValueError, r"^Invalid beta parameter at index 0"),
    ("beta1--0.1", dict(betas=(-0.1, 0.999)), ValueError, r"^Invalid beta parameter at index 0"),
    ("beta1-nan", dict(betas=(math.nan, 0.999)), ValueError,
     r"^Invalid beta parameter at index 0"),
    ("beta2-1.0", dict(betas=(0.9, 1.0)), ValueError, r"^Invalid beta parameter at index 1"),
    ("beta2-nan", dict(betas=(0.9, math.nan)), ValueError, r"^Invalid beta parameter at index 1"),
    ("betas-triple", dict(betas=(0.9, 0.99, 0.999)), TypeError, r"^betas must be a pair"),
    ("eps-negative", dict(eps=-1e-8), ValueError, r"^Invalid epsilon value"),
    ("eps-nan", dict(eps=math.nan), ValueError, r"^Invalid epsilon value"),
    ("eps-inf", dict(eps=math.inf), ValueError, r"^Invalid epsilon value"),
    ("weight_decay-negative", dict(weight_decay=-0.01), ValueError,
     r"^Invalid weight_decay value"),
    ("weight_decay-nan", dict(weight_decay=math.nan), ValueError, r"^Invalid weight_decay value"),
    ("eps_mode-foo", dict(eps_mode="foo"), ValueError, r"^eps_mode must be 'torch' or 'keras'"),
    ("amsgrad-str", dict(amsgrad="yes"), TypeError, r"^amsgrad must be a bool"),
    ("n_threads0", dict(n_threads=0), ValueError, r"^n_threads must be None"),
    ("n_threads-str", dict(n_threads="2"), TypeError, r"^n_threads must be an integer"),
    ("impl-fortran", dict(impl="fortran"), ValueError, r"^impl must be one of"),
]

PARAM_LIST_CASES = [
    ("empty", lambda: [], ValueError, r"empty parameter list"),
    ("single-ndarray", lambda: np.zeros(3, np.float32), TypeError, r"single array"),
    ("duplicate", lambda: (lambda p: [p, p])(np.zeros(N, np.float32)), ValueError,
     r"^params\[1\] overlaps params\[0\]|^params\[0\] overlaps params\[1\]"),
    ("overlapping-views", _overlapping_params, ValueError, r"^params\[\d\] overlaps params\[\d\]"),
    ("noncontiguous", lambda: [np.zeros(N, np.float32), strided()], ValueError,
     r"^params\[1\] must be C- or F-contiguous"),
    ("readonly", lambda: [readonly(np.zeros(N, np.float32))], ValueError,
     r"^params\[0\] is read-only"),
    ("float16", lambda: [np.zeros(N, np.float16)], TypeError,
     r"^params\[0\] must have dtype float32 or float64, got float16"),
    ("int64", lambda: [np.zeros(N, np.int64)], TypeError,
     r"^params\[0\] must have dtype float32 or float64, got int64"),
    ("list", lambda: [[0.0, 1.0]], TypeError, r"^params\[0\] must be a numpy.ndarray, got list"),
    ("unaligned", lambda: [unaligned()], ValueError, r"^params\[0\] is not aligned"),
    ("group-set", lambda: [{"params": set()}], TypeError, r"ordered list"),
    ("group-unknown-option", lambda: [{"params": [np.zeros(3)], "momentum": 0.9}], ValueError,
     r"unknown option.*momentum"),
    ("group-bad-lr", lambda: [{"params": [np.zeros(3)], "lr": -1.0}], ValueError,
     r"^Invalid learning rate"),
    ("overlap-across-groups",
     lambda: (lambda ps: [{"params": [ps[0]]}, {"params": [ps[1]]}])(_overlapping_params()),
     ValueError, r"^params\[\d\] overlaps params\[\d\]"),
]


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("cls", [adamcore.Adam, adamcore.AdamW], ids=lambda c: c.__name__)
@pytest.mark.parametrize("case", CONSTRUCTOR_CASES, ids=lambda c: c[0])
def test_constructor_range_checks(case, cls, impl):
    _, kwargs, exc, pattern = case
    params = _params()
    snap = snapshot(params)
    with pytest.raises(exc, match=pattern):
        cls(params, **{"impl": impl, **kwargs})
    assert_unchanged(params, snap)


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("case", PARAM_LIST_CASES, ids=lambda c: c[0])
def test_constructor_bad_params(case, impl):
    _, build, exc, pattern = case
    params = build()
    with pytest.raises(exc, match=pattern):
        adamcore.Adam(params, impl=impl)


def _optimizer(impl, warm_steps):
    rng = np.random.default_rng(7)
    groups = [{"params": [rng.standard_normal(N).astype(np.float32),
                          rng.standard_normal((3, 4)).astype(np.float32)]},
              {"params": [rng.standard_normal(5), rng.standard_normal(N).astype(np.float32)],
               "amsgrad": True, "weight_decay": 0.1}]
    opt = adamcore.Adam(groups, lr=0.01, impl=impl)
    for _ in range(warm_steps):
        opt.step(good_grads(opt))
    return opt


def good_grads(opt):
    rng = np.random.default_rng(8)
    return [rng.standard_normal(p.shape).astype(p.dtype) for g in opt.param_groups
            for p in g["params"]]


BAD_LAST_GRAD = [
    ("dtype", lambda p: np.ones(p.shape, np.float64), TypeError,
     r"^grads\[3\] has dtype float64 but params\[3\] has dtype float32"),
    ("shape", lambda p: np.ones(p.size + 1, p.dtype), ValueError, r"^grads\[3\] has shape"),
    ("noncontiguous", lambda p: np.ones(2 * p.size, p.dtype)[::2], ValueError,
     r"^grads\[3\] must be C-contiguous like params\[3\]"),
    ("list", lambda p: [1.0] * p.size, TypeError, r"^grads\[3\] must be a numpy.ndarray"),
    ("unaligned", lambda p: unaligned(p.size, p.dtype), ValueError, r"^grads\[3\] is not aligned"),
    ("is-its-param", lambda p: p, ValueError, r"overlaps"),
]


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("warm_steps", [0, 2], ids=lambda k: f"after{k}steps")
@pytest.mark.parametrize("case", BAD_LAST_GRAD, ids=lambda c: c[0])
def test_optimizer_one_bad_grad_changes_nothing(case, warm_steps, impl):
    _, make_bad, exc, pattern = case
    opt = _optimizer(impl, warm_steps)
    grads = good_grads(opt)
    params = [p for g in opt.param_groups for p in g["params"]]
    grads[-1] = make_bad(params[-1])
    before = optimizer_snapshot(opt)
    grad_snap = snapshot(grads)
    with pytest.raises(exc, match=pattern):
        opt.step(grads)
    assert_optimizer_snapshot_equal(optimizer_snapshot(opt), before, "optimizer after a bad step")
    assert_unchanged(grads, grad_snap, "grad")
    # and it still works afterwards, from where it was
    opt.step(good_grads(opt))
    assert all(st["step"] == warm_steps + 1 for st in opt.state.values())


@pytest.mark.parametrize("impl", IMPL_PARAMS)
def test_optimizer_wrong_number_of_grads(impl):
    opt = _optimizer(impl, 1)
    before = optimizer_snapshot(opt)
    with pytest.raises(ValueError, match=r"^expected 4 grads \(one per param, None to skip\), got 3"):
        opt.step(good_grads(opt)[:3])
    with pytest.raises(TypeError, match=r"^step\(\) got one array but the optimizer has 4 params"):
        opt.step(good_grads(opt)[0])
    assert_optimizer_snapshot_equal(optimizer_snapshot(opt), before)


GROUP_EDITS = [
    ("lr-negative", "lr", -1.0, ValueError, r"^Invalid learning rate"),
    ("lr-nan", "lr", math.nan, ValueError, r"^Invalid learning rate"),
    ("betas-1.0", "betas", (1.0, 0.999), ValueError, r"^Invalid beta parameter at index 0"),
    ("betas-nan", "betas", (0.9, math.nan), ValueError, r"^Invalid beta parameter at index 1"),
    ("eps-negative", "eps", -1.0, ValueError, r"^Invalid epsilon value"),
    ("weight_decay-inf", "weight_decay", math.inf, ValueError, r"^Invalid weight_decay value"),
    ("eps_mode-foo", "eps_mode", "foo", ValueError, r"^eps_mode must be"),
]


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("group", [0, 1])
@pytest.mark.parametrize("case", GROUP_EDITS, ids=lambda c: c[0])
def test_bad_group_option_set_later(case, group, impl):
    """A bad value written into param_groups after construction: step raises and
    nothing (no param, no state of any group, no step count) changes."""
    _, key, value, exc, pattern = case
    opt = _optimizer(impl, 2)
    opt.param_groups[group][key] = value
    before = optimizer_snapshot(opt)
    with pytest.raises(exc, match=pattern):
        opt.step(good_grads(opt))
    assert_optimizer_snapshot_equal(optimizer_snapshot(opt), before)


# ---- both raise or both agree -------------------------------------------------------------

AGREE_CASES = [
    ("lr-np.float32", lambda: arrays(), dict(lr=np.float32(1e-3))),
    ("lr-np.float64", lambda: arrays(), dict(lr=np.float64(1e-3))),
    ("beta1-np.float32", lambda: arrays(), dict(beta1=np.float32(0.9))),
    ("weight_decay-np.float32", lambda: arrays(), dict(weight_decay=np.float32(0.1))),
    ("step-np.int64", lambda: arrays(), dict(step=np.int64(3))),
    ("lr-int0", lambda: arrays(), dict(lr=0, beta1=0, eps=0, weight_decay=0)),
    ("lr-1e308", lambda: arrays(dtype=np.float64), dict(lr=1e308)),
    ("eps-1e308", lambda: arrays(dtype=np.float64), dict(eps=1e308)),
    ("weight_decay-1e308", lambda: arrays(dtype=np.float64), dict(weight_decay=1e308)),
    ("lr-int-10**301", lambda: arrays(dtype=np.float64), dict(lr=10**301)),
    ("step-2**62", lambda: arrays(), dict(step=2**62)),
    ("n_threads-2**70", lambda: arrays(), dict(n_threads=2**70)),
    ("n_threads-np.int64", lambda: arrays(), dict(n_threads=np.int64(2))),
    ("n_threads--1000", lambda: arrays(), dict(n_threads=-1000)),
    ("eps0-zero-grad", lambda: {**arrays(), "grad": np.zeros(N, np.float32),
                                "exp_avg": np.zeros(N, np.float32),
                                "exp_avg_sq": np.zeros(N, np.float32)}, dict(eps=0.0)),
]


def _outcome(build, hyper, impl):
    a = build()
    try:
        with np.errstate(all="ignore"):
            call(a, impl, **hyper)
    except Exception as exc:  # noqa: BLE001 - the outcome is what we compare
        return ("raised", type(exc).__name__, str(exc)), a
    return ("ok",), a


@requires_kernel
@pytest.mark.parametrize("case", AGREE_CASES, ids=lambda c: c[0])
def test_both_raise_or_both_agree(case):
    _, build, hyper = case
    (out_c, a_c), (out_np, a_np) = (_outcome(build, hyper, impl) for impl in IMPLS)
    assert out_c == out_np, f"impl='c' gave {out_c}, impl='numpy' gave {out_np}"
    for k in NAMES:
        if isinstance(a_np[k], np.ndarray):
            assert_same_values(a_c[k], a_np[k], k)


@requires_kernel
@pytest.mark.parametrize("lr", [np.float32(0.01), np.float64(0.01)], ids=lambda v: type(v).__name__)
def test_optimizer_accepts_numpy_scalar_lr_in_both_impls(lr):
    """The constructor accepts NumPy scalars; stepping must work the same in both impls."""
    results = []
    for impl in IMPLS:
        p = np.linspace(-1, 1, N, dtype=np.float32)
        opt = adamcore.Adam([p], lr=lr, impl=impl)
        opt.step(np.ones(N, np.float32))
        results.append(p)
    assert_same_values(results[0], results[1], "param")
