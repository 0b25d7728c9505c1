"""The optimizer API: defaults, param groups, state, step forms, state_dict,
implementation choice and build info."""

import copy
import importlib
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

import adamcore
from adamcore import _impl, functional
from helpers import (
    IMPL_PARAMS,
    aligned_empty,
    assert_bitwise_equal,
    assert_optimizer_snapshot_equal,
    assert_optimizers_equal,
    optimizer_snapshot,
    random_values,
    requires_kernel,
    snapshot,
    assert_unchanged,
)

impls = pytest.mark.parametrize("impl", IMPL_PARAMS)


def make_params(rng, shapes=((5,), (3, 4), (7,)), dtype=np.float32):
    return [random_values(rng, s, dtype) for s in shapes]


def grads_for(params, rng):
    return [random_values(rng, p.shape, p.dtype) for p in params]


# ---- defaults -------------------------------------------------------------------

def test_adam_defaults_are_pytorchs():
    opt = adamcore.Adam([np.zeros(3, np.float32)])
    d = opt.defaults
    assert d["lr"] == 1e-3
    assert d["betas"] == (0.9, 0.999)
    assert d["eps"] == 1e-8
    assert d["weight_decay"] == 0.0
    assert d["amsgrad"] is False and d["maximize"] is False
    assert d["decoupled_weight_decay"] is False
    assert d["eps_mode"] == "torch"
    group = opt.param_groups[0]
    assert {k: v for k, v in group.items() if k != "params"} == d


def test_adam_defaults_equal_torch_defaults():
    torch = pytest.importorskip("torch")
    t = torch.optim.Adam([torch.zeros(3)]).defaults
    mine = adamcore.Adam([np.zeros(3, np.float32)]).defaults
    for k in ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize"):
        assert mine[k] == t[k], k
    tw = torch.optim.AdamW([torch.zeros(3)]).defaults
    minew = adamcore.AdamW([np.zeros(3, np.float32)]).defaults
    for k in ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize"):
        assert minew[k] == tw[k], k


@impls
def test_adamw_defaults_and_decoupling(impl):
    opt = adamcore.AdamW([np.zeros(3, np.float32)], impl=impl)
    assert opt.defaults["weight_decay"] == 1e-2
    assert opt.defaults["decoupled_weight_decay"] is True
    rng = np.random.default_rng(0)
    p0 = make_params(rng)
    grads = [grads_for(p0, rng) for _ in range(5)]
    results = {}
    for name, make in [
        ("adamw", lambda ps: adamcore.AdamW(ps, lr=0.01, impl=impl)),
        ("adam-decoupled", lambda ps: adamcore.Adam(ps, lr=0.01, weight_decay=1e-2,
                                                    decoupled_weight_decay=True, impl=impl)),
        ("adam-coupled", lambda ps: adamcore.Adam(ps, lr=0.01, weight_decay=1e-2, impl=impl)),
    ]:
        ps = [p.copy() for p in p0]
        opt = make(ps)
        for g in grads:
            opt.step(g)
        results[name] = opt
    assert_optimizers_equal(results["adamw"], results["adam-decoupled"])
    assert not np.array_equal(results["adamw"].param_groups[0]["params"][0],
                              results["adam-coupled"].param_groups[0]["params"][0])


# ---- param groups ---------------------------------------------------------------

@impls
def test_param_groups_have_their_own_options(impl):
    """Two groups in one optimizer step exactly like two optimizers, one per group."""
    rng = np.random.default_rng(1)
    a0, b0 = make_params(rng, [(6,), (2, 3)]), make_params(rng, [(9,)], np.float64)
    opts_b = dict(lr=0.1, betas=(0.5, 0.9), amsgrad=True, weight_decay=0.1, maximize=True,
                  eps_mode="keras")
    a, b = [p.copy() for p in a0], [p.copy() for p in b0]
    both = adamcore.Adam([{"params": a}, {"params": b, **opts_b}], lr=0.01, eps=1e-6, impl=impl)
    assert both.param_groups[0]["lr"] == 0.01 and both.param_groups[0]["amsgrad"] is False
    assert both.param_groups[1]["lr"] == 0.1 and both.param_groups[1]["amsgrad"] is True
    assert both.param_groups[1]["eps"] == 1e-6  # inherited from the defaults
    sep_a = adamcore.Adam([p.copy() for p in a0], lr=0.01, eps=1e-6, impl=impl)
    sep_b = adamcore.Adam([p.copy() for p in b0], eps=1e-6, impl=impl, **opts_b)
    for _ in range(5):
        ga, gb = grads_for(a, rng), grads_for(b, rng)
        both.step(ga + gb)
        sep_a.step(ga)
        sep_b.step(gb)
    for p, q in zip(a + b, sep_a.param_groups[0]["params"] + sep_b.param_groups[0]["params"]):
        assert_bitwise_equal(p, q)
    for i, st in both.state.items():
        sep, j = (sep_a, i) if i < 2 else (sep_b, i - 2)
        assert sorted(st) == sorted(sep.state[j])
        for k in st:
            if k == "step":
                assert st[k] == sep.state[j][k]
            else:
                assert_bitwise_equal(st[k], sep.state[j][k], k)


def test_add_param_group():
    p, q = np.zeros(3, np.float32), np.zeros(4, np.float64)
    opt = adamcore.Adam([p], lr=0.5)
    opt.add_param_group({"params": q, "amsgrad": True})
    assert len(opt.param_groups) == 2
    assert opt.param_groups[1]["params"][0] is q
    assert opt.param_groups[1]["lr"] == 0.5
    opt.step([np.ones(3, np.float32), np.ones(4)])
    assert "max_exp_avg_sq" in opt.state[1] and "max_exp_avg_sq" not in opt.state[0]
    with pytest.raises(ValueError, match=r"params\[2\] overlaps params\[0\]"):
        opt.add_param_group({"params": [p]})
    assert len(opt.param_groups) == 2


# ---- state ----------------------------------------------------------------------

@impls
@pytest.mark.parametrize("amsgrad", [False, True])
def test_state_keys(impl, amsgrad, rng):
    params = make_params(rng)
    opt = adamcore.Adam(params, amsgrad=amsgrad, impl=impl)
    assert opt.state == {}
    opt.step(grads_for(params, rng))
    opt.step(grads_for(params, rng))
    expected = {"step", "exp_avg", "exp_avg_sq"} | ({"max_exp_avg_sq"} if amsgrad else set())
    assert sorted(opt.state) == [0, 1, 2]
    for i, p in enumerate(params):
        st = opt.state[i]
        assert set(st) == expected
        assert st["step"] == 2 and type(st["step"]) is int
        for k in expected - {"step"}:
            assert st[k].shape == p.shape and st[k].dtype == p.dtype
            assert not np.shares_memory(st[k], p)


@impls
def test_state_matches_functional(impl):
    """opt.state holds exactly what the functional step computes."""
    rng = np.random.default_rng(3)
    p = random_values(rng, (11,), np.float64)
    q = p.copy()
    m, v, vmax = np.zeros_like(q), np.zeros_like(q), np.zeros_like(q)
    opt = adamcore.Adam([p], lr=0.02, amsgrad=True, impl=impl)
    for t in range(1, 6):
        g = random_values(rng, p.shape, p.dtype)
        opt.step(g)
        functional.adam_step(q, g, m, v, max_exp_avg_sq=vmax, step=t, lr=0.02, beta1=0.9,
                             beta2=0.999, eps=1e-8, impl="numpy")
    assert_bitwise_equal(p, q)
    for k, a in (("exp_avg", m), ("exp_avg_sq", v), ("max_exp_avg_sq", vmax)):
        assert_bitwise_equal(opt.state[0][k], a, k)


@impls
def test_step_single_array(impl, rng):
    p = random_values(rng, (7,), np.float32)
    p0, q = p.copy(), p.copy()
    g = random_values(rng, (7,), np.float32)
    a = adamcore.Adam([p], impl=impl)
    b = adamcore.Adam([q], impl=impl)
    a.step(g)
    b.step([g])
    assert_optimizers_equal(a, b)
    assert not np.array_equal(p, p0)


@impls
def test_none_grad_skips_param(impl, rng):
    params = make_params(rng)
    untouched = params[1].copy()
    opt = adamcore.Adam(params, impl=impl)
    g = grads_for(params, rng)
    opt.step([g[0], None, g[2]])
    assert 1 not in opt.state
    assert_bitwise_equal(params[1], untouched)
    opt.step(g)
    opt.step([None, None, g[2]])
    assert opt.state[0]["step"] == 2
    assert opt.state[1]["step"] == 1
    assert opt.state[2]["step"] == 3
    # The skipped param's first real step used t=1 (bias correction of step 1).
    q = untouched.copy()
    m, v = np.zeros_like(q), np.zeros_like(q)
    functional.adam_step(q, g[1], m, v, step=1, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                         impl="numpy")
    assert_bitwise_equal(params[1], q)


@impls
def test_apply_gradients_equals_step(impl):
    rng = np.random.default_rng(6)
    p0 = make_params(rng)
    grads = [grads_for(p0, rng) for _ in range(4)]
    a_params, b_params = [p.copy() for p in p0], [p.copy() for p in p0]
    a = adamcore.Adam(a_params, lr=0.01, amsgrad=True, impl=impl)
    b = adamcore.Adam(b_params, lr=0.01, amsgrad=True, impl=impl)
    for g in grads:
        a.step(g)
        b.apply_gradients(zip(g[::-1], b_params[::-1]))  # order does not matter
    assert_optimizers_equal(a, b)
    # a partial list skips the missing params, like None in step()
    b.apply_gradients([(grads[0][0], b_params[0])])
    assert b.state[0]["step"] == 5 and b.state[1]["step"] == 4


@impls
def test_apply_gradients_refuses_foreign_array(impl):
    params = [np.zeros(3, np.float32), np.zeros(3, np.float32)]
    opt = adamcore.Adam(params, impl=impl)
    foreign = params[0].copy()  # equal values, not the same array
    before = optimizer_snapshot(opt)
    with pytest.raises(ValueError, match="not a param of this optimizer"):
        opt.apply_gradients([(np.ones(3, np.float32), params[1]),
                             (np.ones(3, np.float32), foreign)])
    with pytest.raises(ValueError, match=r"params\[0\] twice"):
        opt.apply_gradients([(np.ones(3, np.float32), params[0])] * 2)
    assert_optimizer_snapshot_equal(optimizer_snapshot(opt), before)
    assert opt.state == {}


@impls
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_state_alignment_and_layout_follow_param(impl, dtype):
    """exp_avg & co start at the param's address mod 64 and have its memory order."""
    itemsize = np.dtype(dtype).itemsize
    params = [aligned_empty(37, dtype, off) for off in range(64 // itemsize)]
    f2d = np.asfortranarray(np.ones((6, 7), dtype))
    c2d = np.ones((6, 7), dtype)
    params += [f2d, c2d]
    for p in params:
        p[...] = 1.0
    opt = adamcore.Adam(params, amsgrad=True, impl=impl)
    opt.step([np.ones_like(p) for p in params])
    for i, p in enumerate(params):
        addr = p.__array_interface__["data"][0] % 64
        for k in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            a = opt.state[i][k]
            assert a.__array_interface__["data"][0] % 64 == addr, (i, k)
            assert a.flags.c_contiguous == p.flags.c_contiguous, (i, k)
            assert a.flags.f_contiguous == p.flags.f_contiguous, (i, k)
    assert opt.state[len(params) - 2]["exp_avg"].flags.f_contiguous
    assert not opt.state[len(params) - 2]["exp_avg"].flags.c_contiguous


# ---- state_dict -----------------------------------------------------------------

def _trained(impl, steps, rng_seed=7, params=None):
    rng = np.random.default_rng(rng_seed)
    if params is None:
        params = make_params(rng, [(5,), (3, 4), (7,), (2, 2)])
        params[3] = params[3].astype(np.float64)
    opt = adamcore.Adam([{"params": params[:2]},
                         {"params": params[2:], "lr": 0.05, "amsgrad": True,
                          "weight_decay": 0.1, "eps_mode": "keras"}], lr=0.01, impl=impl)
    return opt, params


def _grad_seq(params, n, seed):
    rng = np.random.default_rng(seed)
    return [grads_for(params, rng) for _ in range(n)]


@impls
def test_state_dict_round_trip_bitwise(impl):
    opt, params = _trained(impl, 0)
    g1, g2 = _grad_seq(params, 5, 1), _grad_seq(params, 5, 2)
    g1[2][1] = None  # one param behind the others
    for g in g1:
        opt.step(g)
    saved = opt.state_dict()
    saved_params = [p.copy() for p in params]
    for g in g2:
        opt.step(g)
    # A fresh optimizer over copies of the saved params, loaded from the dict.
    fresh_params = [p.copy() for p in saved_params]
    fresh, _ = _trained(impl, 0, params=fresh_params)
    fresh.param_groups[0]["lr"] = 0.5  # overwritten by the load
    fresh.load_state_dict(saved)
    assert fresh.param_groups[0]["lr"] == 0.01
    for g in g2:
        fresh.step(g)
    assert_optimizers_equal(fresh, opt)
    # The loaded state keeps the alignment/layout contract.
    for i, p in enumerate(fresh_params):
        for k, a in fresh.state[i].items():
            if k != "step":
                assert (a.__array_interface__["data"][0] % 64
                        == p.__array_interface__["data"][0] % 64)


@impls
def test_load_state_dict_replaces_existing_state(impl):
    """Loading into an optimizer that already stepped replaces all of its state:
    a param without state in the dict has none afterwards (PyTorch semantics)."""
    opt, params = _trained(impl, 0)
    for g in _grad_seq(params, 3, 11):
        g[1] = None  # params[1] never steps
        opt.step(g)
    saved = opt.state_dict()
    assert 1 not in saved["state"]
    other_params = [p.copy() for p in params]
    other, _ = _trained(impl, 0, params=other_params)
    for g in _grad_seq(params, 4, 12):
        other.step(g)
    for p, q in zip(other_params, params):
        p[...] = q
    other.load_state_dict(saved)
    assert sorted(other.state) == sorted(opt.state)
    for g in _grad_seq(params, 2, 13):
        opt.step(g)
        other.step(g)
    assert_optimizers_equal(other, opt)


@requires_kernel
def test_state_dict_round_trip_across_impls():
    """Saved from impl="c", continued with impl="numpy": the same bits."""
    opt, params = _trained("c", 0)
    for g in _grad_seq(params, 3, 3):
        opt.step(g)
    saved = opt.state_dict()
    other_params = [p.copy() for p in params]
    other, _ = _trained("numpy", 0, params=other_params)
    other.load_state_dict(saved)
    for g in _grad_seq(params, 3, 4):
        opt.step(g)
        other.step(g)
    assert_optimizers_equal(opt, other)


@impls
def test_state_dict_layout_and_copies(impl):
    opt, params = _trained(impl, 0)
    for g in _grad_seq(params, 2, 5):
        opt.step(g)
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"}
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2, 3]]
    assert sd["param_groups"][1]["lr"] == 0.05 and sd["param_groups"][1]["amsgrad"] is True
    assert sorted(sd["state"]) == [0, 1, 2, 3]
    before = optimizer_snapshot(opt)
    # Mutate everything in the dict: the optimizer must not change.
    for st in sd["state"].values():
        st["step"] = 99
        for k, a in st.items():
            if isinstance(a, np.ndarray):
                assert not any(np.shares_memory(a, x) for x in params)
                a[...] = 123.0
    sd["param_groups"][0]["lr"] = 7.0
    sd["param_groups"][0]["params"].append(9)
    assert_optimizer_snapshot_equal(optimizer_snapshot(opt), before)
    assert opt.param_groups[0]["lr"] == 0.01
    assert all(isinstance(p, np.ndarray) for p in opt.param_groups[0]["params"])


def _broken(kind):
    def edit(sd):
        if kind == "group-count":
            sd["param_groups"] = sd["param_groups"][:1]
        elif kind == "param-count":
            sd["param_groups"][0]["params"] = [0]
        elif kind == "shape":
            sd["state"][1]["exp_avg"] = np.zeros(12, np.float32)
        elif kind == "dtype":
            sd["state"][3]["exp_avg_sq"] = sd["state"][3]["exp_avg_sq"].astype(np.float32)
        elif kind == "missing-exp_avg":
            del sd["state"][0]["exp_avg"]
        elif kind == "missing-step":
            del sd["state"][0]["step"]
        elif kind == "negative-step":
            sd["state"][0]["step"] = -1
        elif kind == "missing-option":
            del sd["param_groups"][0]["betas"]
        elif kind == "bad-option":
            sd["param_groups"][1]["lr"] = -1.0
        elif kind == "unknown-param-id":
            sd["state"][17] = sd["state"].pop(0)
        elif kind == "missing-key":
            del sd["param_groups"]
        elif kind == "state-not-array":
            sd["state"][0]["exp_avg"] = [0.0] * 5
        elif kind == "duplicate-param-id":
            sd["param_groups"][1]["params"][0] = sd["param_groups"][0]["params"][0]
        elif kind == "group-without-params":
            del sd["param_groups"][0]["params"]
        elif kind == "state-not-dict":
            sd["state"] = list(sd["state"].values())
        return sd
    return edit


LOAD_ERRORS = [
    ("group-count", ValueError, r"1 param groups"),
    ("param-count", ValueError, r"param group 0 has 1 params"),
    ("shape", ValueError, r"state\[1\]\['exp_avg'\] must be a float32 array of shape \(3, 4\)"),
    ("dtype", ValueError, r"state\[3\]\['exp_avg_sq'\] must be a float64 array"),
    ("missing-exp_avg", ValueError, r"state\[0\] must hold 'step' and"),
    ("missing-step", ValueError, r"state\[0\]\['step'\] must be an integer"),
    ("negative-step", ValueError, r"state\[0\]\['step'\] must be an integer >= 0"),
    ("missing-option", ValueError, r"param group 0 options must be"),
    ("bad-option", ValueError, r"^Invalid learning rate"),
    ("unknown-param-id", ValueError, r"param id 17"),
    ("missing-key", ValueError, r"keys 'state' and 'param_groups'"),
    ("state-not-array", ValueError, r"state\[0\]\['exp_avg'\] must be a float32 array"),
    ("duplicate-param-id", ValueError, r"lists param id 0 more than once"),
    ("group-without-params", ValueError, r"param group 0 of state_dict must be a dict whose"),
    ("state-not-dict", ValueError, r"state_dict\['state'\] a dict"),
]


@impls
@pytest.mark.parametrize("case", LOAD_ERRORS, ids=lambda c: c[0])
def test_load_state_dict_refuses_and_changes_nothing(case, impl):
    kind, exc, pattern = case
    opt, params = _trained(impl, 0)
    for g in _grad_seq(params, 2, 6):
        opt.step(g)
    target, tparams = _trained(impl, 0, rng_seed=8)
    for g in _grad_seq(tparams, 3, 9):
        target.step(g)
    # Options unlike the dict's, so that a half-done load would show.
    target.param_groups[0]["lr"] = 0.125
    target.param_groups[1]["betas"] = (0.5, 0.75)
    before = optimizer_snapshot(target)
    groups_before = copy.deepcopy([{k: v for k, v in g.items() if k != "params"}
                                   for g in target.param_groups])
    sd = _broken(kind)(opt.state_dict())
    sd_snap = ({i: snapshot(st) for i, st in sd["state"].items()}
               if isinstance(sd.get("state"), dict) else {})
    with pytest.raises(exc, match=pattern):
        target.load_state_dict(sd)
    assert_optimizer_snapshot_equal(optimizer_snapshot(target), before)
    assert [{k: v for k, v in g.items() if k != "params"}
            for g in target.param_groups] == groups_before
    for i, snap in sd_snap.items():
        assert_unchanged(sd["state"][i], snap, "state_dict entry")


@impls
def test_load_state_dict_accepts_zero_dim_step(impl):
    """torch keeps ``step`` as a 0-d tensor; a 0-d array is accepted and made an int."""
    opt, params = _trained(impl, 0)
    for g in _grad_seq(params, 2, 10):
        opt.step(g)
    sd = opt.state_dict()
    for st in sd["state"].values():
        st["step"] = np.array(st["step"], np.float64).astype(np.int64)
    other, _ = _trained(impl, 0, params=[p.copy() for p in params])
    other.load_state_dict(sd)
    assert all(type(st["step"]) is int and st["step"] == 2 for st in other.state.values())


def test_repr():
    opt = adamcore.Adam([{"params": [np.zeros(2, np.float32)]},
                         {"params": [np.zeros(2, np.float32)], "lr": 0.5}], impl="numpy")
    r = repr(opt)
    assert r.startswith("Adam (")
    assert "Parameter Group 0" in r and "Parameter Group 1" in r
    assert "lr: 0.001" in r and "lr: 0.5" in r
    assert "betas: (0.9, 0.999)" in r
    assert repr(adamcore.AdamW([np.zeros(1)])).startswith("AdamW (")


# ---- training -------------------------------------------------------------------

@impls
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_linear_regression_converges(impl, dtype):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, 100).astype(dtype)
    y = (2 * x + 1 + rng.normal(0, 0.05, 100)).astype(dtype)
    w, b = np.zeros(1, dtype), np.zeros(1, dtype)
    opt = adamcore.Adam([w, b], lr=0.1, impl=impl)
    for _ in range(500):
        err = w * x + b - y
        opt.step([np.array([2 * np.mean(err * x)], dtype), np.array([2 * np.mean(err)], dtype)])
    assert abs(w[0] - 2) < 0.1, w
    assert abs(b[0] - 1) < 0.1, b
    assert opt.state[0]["step"] == 500


# ---- implementation choice ---------------------------------------------------------

def test_impl_numpy_works():
    p = np.zeros(4, np.float32)
    opt = adamcore.Adam([p], impl="numpy")
    assert opt.impl == "numpy"
    opt.step(np.ones(4, np.float32))
    assert np.all(p < 0)


@requires_kernel
def test_impl_c_and_auto_resolve_to_c():
    assert _impl.resolve("c") == "c"
    assert _impl.resolve("auto") == "c"
    assert adamcore.Adam([np.zeros(1)], impl="auto").impl == "c"


@pytest.fixture
def reload_impl(monkeypatch):
    """Reload adamcore._impl inside the test (so environment variables read at
    import are seen) and again after it, with the environment restored."""
    yield lambda: importlib.reload(_impl)
    monkeypatch.undo()
    importlib.reload(_impl)


@requires_kernel
def test_env_numpy_makes_auto_numpy(monkeypatch, reload_impl):
    monkeypatch.setenv("ADAMCORE_IMPL", "numpy")
    reload_impl()  # whether read per call or once at import, the variable is seen
    assert _impl.resolve("auto") == "numpy"
    assert adamcore.Adam([np.zeros(1)]).impl == "numpy"
    assert _impl.resolve("c") == "c"  # an explicit choice wins over the environment
    assert adamcore.Adam([np.zeros(1)], impl="c").impl == "c"
    assert _impl.resolve("numpy") == "numpy"


def test_env_bad_value_raises(monkeypatch, reload_impl):
    monkeypatch.setenv("ADAMCORE_IMPL", "fortran")
    try:
        reload_impl()
    except ValueError as exc:  # refusing at import is fine too
        assert "ADAMCORE_IMPL" in str(exc)
        return
    with pytest.raises(ValueError, match="ADAMCORE_IMPL must be one of"):
        _impl.resolve("auto")
    assert _impl.resolve("numpy") == "numpy"


@requires_kernel
@pytest.mark.parametrize("env, expected", [("numpy", "numpy"), ("c", "c"), ("", "c")])
def test_env_in_a_fresh_interpreter(env, expected):
    """The documented use: the variable set before Python starts."""
    code = ("import adamcore, numpy as np; from adamcore import _impl; "
            "print(_impl.resolve('auto'), adamcore.Adam([np.zeros(1)]).impl, _impl.resolve('c'))")
    out = subprocess.run([sys.executable, "-c", code], env={**os.environ, "ADAMCORE_IMPL": env},
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == [expected, expected, "c"]


def test_bad_impl_value():
    with pytest.raises(ValueError, match=r"impl must be one of \('auto', 'c', 'numpy'\)"):
        _impl.resolve("fortran")
    with pytest.raises(ValueError, match="impl must be one of"):
        adamcore.Adam([np.zeros(1)], impl="C")
    with pytest.raises(ValueError, match="impl must be one of"):
        functional.adam_step(np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1), step=1,
                             lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8, impl=None)


@pytest.fixture
def no_kernel(monkeypatch):
    monkeypatch.setattr(_impl, "_kernel", None)
    monkeypatch.setattr(_impl, "_warned", False)
    monkeypatch.setattr(_impl, "_KERNEL_ERROR", ImportError("simulated: no _kernel"),
                        raising=False)


def test_missing_kernel_auto_warns_once_and_uses_numpy(no_kernel):
    with pytest.warns(RuntimeWarning, match="NumPy fallback") as record:
        assert _impl.resolve("auto") == "numpy"
    assert len([w for w in record if issubclass(w.category, RuntimeWarning)]) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second warning would raise here
        assert _impl.resolve("auto") == "numpy"
        p = np.zeros(3, np.float32)
        opt = adamcore.Adam([p])
        assert opt.impl == "numpy"
        opt.step(np.ones(3, np.float32))
    assert np.all(p < 0)


def test_missing_kernel_c_raises_importerror(no_kernel):
    with pytest.raises(ImportError, match=r"impl='c' needs the compiled extension"):
        _impl.resolve("c")
    with pytest.raises(ImportError, match="impl='numpy'"):
        adamcore.Adam([np.zeros(1)], impl="c")
    assert _impl.resolve("numpy") == "numpy"


def test_missing_kernel_build_info(no_kernel):
    info = adamcore.build_info()
    assert info["extension"] is False
    assert info["simd_in_use"] is None and info["simd_available"] == []
    with pytest.raises(ImportError):
        adamcore.set_simd_level("baseline")


@requires_kernel
def test_build_info():
    info = adamcore.build_info()
    assert {"extension", "extension_error", "openmp", "max_threads", "simd_in_use",
            "simd_available", "compile_args", "parallel_min_elements"} <= set(info)
    assert info["extension"] is True
    assert info["extension_error"] is None
    assert isinstance(info["openmp"], bool)
    assert isinstance(info["max_threads"], int) and info["max_threads"] >= 1
    assert isinstance(info["simd_available"], list) and info["simd_available"]
    assert all(isinstance(s, str) for s in info["simd_available"])
    assert info["simd_available"][0] == "baseline"
    assert isinstance(info["simd_in_use"], str)
    assert info["simd_in_use"] in info["simd_available"]
    assert isinstance(info["compile_args"], str)
    assert "-ffp-contract=off" in info["compile_args"].split()
    assert "-march=native" not in info["compile_args"]
    assert isinstance(info["parallel_min_elements"], int) and info["parallel_min_elements"] > 0


@requires_kernel
def test_set_simd_level_round_trip(set_simd):
    levels = adamcore.build_info()["simd_available"]
    original = adamcore.build_info()["simd_in_use"]
    for level in levels:
        previous = adamcore.set_simd_level(level)
        assert previous in levels
        assert adamcore.build_info()["simd_in_use"] == level
    adamcore.set_simd_level(original)
    with pytest.raises(ValueError, match="SIMD level must be one of"):
        adamcore.set_simd_level("sse9")
    assert adamcore.build_info()["simd_in_use"] == original
