"""adamcore.SGD / RMSprop / Adagrad against torch.optim.SGD / RMSprop / Adagrad
after 100 steps.

PyTorch groups some operations differently (addcmul, lerp for RMSprop's
grad_avg, addcdiv), so this is a tolerance comparison: float32 rtol 1e-5 /
atol 1e-6, float64 rtol 1e-12 / atol 1e-14, on params and on every state array
(our state keys are torch's: ``momentum_buffer``, ``square_avg``,
``grad_avg``, ``sum``). torch's SGD keeps no ``step``; with momentum 0 its
state has no (or a None) ``momentum_buffer``, and ours has none either.
"""

import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import adamcore  # noqa: E402
from helpers import DTYPES, IMPL_PARAMS, PARALLEL_MIN, requires_kernel  # noqa: E402

STEPS = 100
TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-14)}
SHAPES = [(17,), (4, 33), (1000,)]
TORCH_DTYPE = {np.float32: torch.float32, np.float64: torch.float64}
TORCH_MODES = {"foreach-false": dict(foreach=False), "foreach-true": dict(foreach=True),
               "fused": dict(fused=True)}


def _opts_id(options):
    def short(k, v):
        if v is True:
            return k
        return f"{k}{v:g}"
    return "-".join(short(k, v) for k, v in options.items()) or "defaults"


def _sgd_configs():
    momenta = [dict(), dict(momentum=0.9), dict(momentum=0.9, dampening=0.5),
               dict(momentum=0.5, nesterov=True)]
    for mom, wd, mx in itertools.product(momenta, (0.0, 0.1), (False, True)):
        o = dict(lr=0.01, **mom)
        if wd:
            o["weight_decay"] = wd
        if mx:
            o["maximize"] = True
        yield o
    yield dict(lr=0.1, momentum=0.9, dampening=0.9, weight_decay=1e-3)


def _rmsprop_configs():
    for mom, centered, wd, mx in itertools.product((0.0, 0.9), (False, True), (0.0, 0.1),
                                                   (False, True)):
        o = dict(lr=1e-3)
        if mom:
            o["momentum"] = mom
        if centered:
            o["centered"] = True
        if wd:
            o["weight_decay"] = wd
        if mx:
            o["maximize"] = True
        yield o
    yield dict(lr=1e-3, alpha=0.9)
    yield dict(lr=1e-3, alpha=0.5, eps=1e-3, centered=True)
    yield dict(lr=1e-2, eps=1e-2, momentum=0.5)
    yield dict()  # torch's defaults, lr 1e-2


def _adagrad_configs():
    for lr_decay, wd, iav, mx in itertools.product((0.0, 0.01), (0.0, 0.1), (0.0, 0.1),
                                                   (False, True)):
        o = dict(lr=0.05)
        if lr_decay:
            o["lr_decay"] = lr_decay
        if wd:
            o["weight_decay"] = wd
        if iav:
            o["initial_accumulator_value"] = iav
        if mx:
            o["maximize"] = True
        yield o
    yield dict(lr=0.05, eps=1e-3)
    yield dict(lr=0.05, eps=1e-3, initial_accumulator_value=1.0, lr_decay=0.1)
    yield dict()  # torch's defaults


# (id, class name, options shared by both)
CONFIGS = (
    [(f"sgd-{_opts_id(o)}", "SGD", o) for o in _sgd_configs()]
    + [(f"rmsprop-{_opts_id(o)}", "RMSprop", o) for o in _rmsprop_configs()]
    + [(f"adagrad-{_opts_id(o)}", "Adagrad", o) for o in _adagrad_configs()]
)


def make_torch(cls_name, params, options, mode, dtype):
    """The torch optimizer, or a skip when this build can't run ``mode`` for it."""
    cls = getattr(torch.optim, cls_name)
    try:
        return cls(params, **options, **TORCH_MODES[mode])
    except (RuntimeError, ValueError, TypeError) as exc:  # no fused/foreach form here
        pytest.skip(f"torch {torch.__version__} CPU has no {mode} {cls_name} for "
                    f"{np.dtype(dtype).name}: {exc}")


def torch_state(tst):
    """torch's state of one param as {key: ndarray} (None entries dropped), and its step."""
    arrays = {k: v.detach().numpy() for k, v in tst.items()
              if k != "step" and v is not None}
    step = int(tst["step"]) if "step" in tst else None
    return arrays, step


def assert_close_to_torch(opt, topt, params, tparams, dtype, steps):
    tol = TOL[dtype]
    for i, (p, tp) in enumerate(zip(params, tparams)):
        np.testing.assert_allclose(p, tp.detach().numpy(), err_msg=f"params[{i}]", **tol)
        st = opt.state[i]
        tarrays, tstep = torch_state(topt.state[tp])
        assert st["step"] == steps
        if tstep is not None:
            assert tstep == steps
        mine = sorted(k for k in st if k != "step")
        assert mine == sorted(tarrays), f"state[{i}] keys {mine} != torch's {sorted(tarrays)}"
        for k in mine:
            assert st[k].dtype == dtype
            np.testing.assert_allclose(st[k], tarrays[k], err_msg=f"state[{i}][{k!r}]", **tol)


def run_both(opt, topt, params, tparams, rng, dtype, steps=STEPS):
    for _ in range(steps):
        grads = [rng.standard_normal(p.shape).astype(dtype) for p in params]
        for tp, g in zip(tparams, grads):
            tp.grad = torch.from_numpy(g.copy())
        topt.step()
        opt.step(grads)


def torch_params(params):
    return [torch.from_numpy(p.copy()).requires_grad_() for p in params]


@pytest.fixture(autouse=True, scope="module")
def _torch_one_thread():
    """torch on one intra-op thread: its small-tensor steps are then fast and
    steady; restored after this module."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("mode", list(TORCH_MODES))
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c[0])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_matches_torch(dtype, config, mode, impl):
    name, cls_name, options = config
    rng = np.random.default_rng(sum(map(ord, name)))
    params = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    tparams = torch_params(params)
    topt = make_torch(cls_name, tparams, options, mode, dtype)
    opt = getattr(adamcore, cls_name)(params, **options, impl=impl)
    initial = [p.copy() for p in params]
    run_both(opt, topt, params, tparams, rng, dtype)
    assert_close_to_torch(opt, topt, params, tparams, dtype, STEPS)
    assert all(not np.array_equal(p, p0) for p, p0 in zip(params, initial)), "nothing moved"


@pytest.mark.parametrize("cls_name", ["SGD", "RMSprop", "Adagrad"])
def test_defaults_equal_torch_defaults(cls_name):
    mine = getattr(adamcore, cls_name)([np.zeros(3, np.float32)]).defaults
    theirs = getattr(torch.optim, cls_name)([torch.zeros(3, requires_grad=True)]).defaults
    for k, v in mine.items():
        assert k in theirs, f"{cls_name} option {k!r} is not torch's"
        assert v == theirs[k], f"{cls_name} default {k}: {v!r} != torch's {theirs[k]!r}"


GROUP_OPTIONS = {
    "SGD": (dict(lr=0.01), [dict(lr=0.1, momentum=0.9),
                            dict(lr=1e-4, momentum=0.5, nesterov=True, weight_decay=0.1),
                            dict(dampening=0.3, momentum=0.8, maximize=True)]),
    "RMSprop": (dict(lr=1e-3), [dict(lr=0.01, centered=True),
                                dict(lr=1e-7, momentum=0.9, weight_decay=0.1),
                                dict(alpha=0.9, eps=1e-4, maximize=True, centered=True,
                                     momentum=0.5)]),
    # torch fills every "sum" with the constructor's initial_accumulator_value,
    # not the group's (adamcore uses the group's), so it is not set per group here.
    "Adagrad": (dict(lr=0.01, initial_accumulator_value=0.5),
                [dict(lr=0.1, lr_decay=0.01),
                 dict(lr=1e-5, weight_decay=0.1),
                                dict(eps=1e-4, maximize=True)]),
}


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("cls_name", list(GROUP_OPTIONS))
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_param_groups_match_torch(dtype, cls_name, impl):
    rng = np.random.default_rng(11)
    shapes = [[(5,), (2, 3)], [(40,)], [(7, 7), (1,)]]
    defaults, group_opts = GROUP_OPTIONS[cls_name]
    params = [[rng.standard_normal(s).astype(dtype) for s in group] for group in shapes]
    tparams = [torch_params(group) for group in params]
    opt = getattr(adamcore, cls_name)([{"params": ps, **o} for ps, o in zip(params, group_opts)],
                                      **defaults, impl=impl)
    topt = getattr(torch.optim, cls_name)(
        [{"params": ps, **o} for ps, o in zip(tparams, group_opts)], **defaults)
    flat, tflat = sum(params, []), sum(tparams, [])
    initial = [p.copy() for p in flat]
    run_both(opt, topt, flat, tflat, rng, dtype)
    assert_close_to_torch(opt, topt, flat, tflat, dtype, STEPS)
    # The per-group lr took effect: the big-lr group moves far more than the lr 1e-4/1e-5 one.
    moved = [np.abs(p - p0).max() for p, p0 in zip(flat, initial)]
    assert min(moved[:2]) > 100 * moved[2]


LARGE_OPTIONS = {
    "SGD": dict(lr=0.01, momentum=0.9, nesterov=True, weight_decay=0.1, maximize=True),
    # (not centered: sqrt(sq - ga*ga) magnifies float32 rounding where sq ~ ga*ga, and
    # among 49159 elements a few land there; the small-tensor grid covers centered)
    "RMSprop": dict(lr=1e-3, momentum=0.9, alpha=0.9, weight_decay=0.1, maximize=True),
    "Adagrad": dict(lr=0.05, lr_decay=0.01, initial_accumulator_value=0.1, weight_decay=0.1,
                    maximize=True),
}


@requires_kernel
@pytest.mark.parametrize("n_threads", [1, 2], ids=lambda t: f"t{t}")
@pytest.mark.parametrize("cls_name", list(LARGE_OPTIONS))
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_large_tensor_matches_torch(dtype, cls_name, n_threads):
    """Above the parallel threshold, split over threads."""
    rng = np.random.default_rng(5)
    params = [rng.standard_normal(3 * PARALLEL_MIN + 7).astype(dtype),
              rng.standard_normal((5, 9)).astype(dtype)]
    tparams = torch_params(params)
    options = LARGE_OPTIONS[cls_name]
    topt = getattr(torch.optim, cls_name)(tparams, **options)
    opt = getattr(adamcore, cls_name)(params, **options, n_threads=n_threads, impl="c")
    run_both(opt, topt, params, tparams, rng, dtype, steps=20)
    assert_close_to_torch(opt, topt, params, tparams, dtype, 20)
