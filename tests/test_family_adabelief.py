"""adamcore.AdaBelief against the paper's update, written here independently.

AdaBelief (Zhuang et al., NeurIPS 2020, Algorithm 2; adabelief-pytorch 0.2 with
rectify=False, fixed_decay=False). At step t, per element::

    g = -g                                  if maximize
    p = p * (1 - lr*wd)                     weight_decouple (default)
    g = g + wd*p                            otherwise (L2)
    m = b1*m + (1-b1)*g
    s = b2*s + (1-b2)*(g-m)**2 + eps
    smax = max(smax, s); s_used = smax      if amsgrad, else s_used = s
    denom = sqrt(s_used)/sqrt(1-b2**t) + eps
    p = p - lr/(1-b1**t) * m/denom

With rectify=True (the reference's RAdam rectification, degenerated_to_sgd),
rho_inf = 2/(1-b2) - 1 and rho_t = rho_inf - 2 t b2**t/(1-b2**t): while
rho_t < 5, p = p - lr/(1-b1**t) * m; afterwards
p = p - lr*r_t/(1-b1**t) * m/(sqrt(s_used) + eps) with
r_t = sqrt((1-b2**t)(rho_t-4)/(rho_inf-4)(rho_t-2)/rho_t rho_inf/(rho_inf-2)).

``belief_reference`` below is that text, whole-array NumPy in the param's dtype
with the per-step scalars in double, in the paper's grouping (a division by
sqrt(bc2), lr/bc1 applied last) rather than the kernel's; so this is a
tolerance comparison (float32 rtol 1e-5 / atol 1e-6, float64 rtol 1e-12 /
atol 1e-14) after 100 steps on params and every state array.
"""

import itertools
import math

import numpy as np
import pytest

import adamcore
from helpers import DTYPES, IMPL_PARAMS, PARALLEL_MIN, requires_kernel

STEPS = 100
TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-14)}
SHAPES = [(17,), (4, 33), (500,)]


def belief_reference(params, grads_per_step, *, lr=1e-3, betas=(0.9, 0.999), eps=1e-16,
                     weight_decay=0.0, amsgrad=False, decoupled_weight_decay=True,
                     rectify=False, maximize=False):
    """The update of the module docstring on copies of ``params``; returns
    (params, [state dicts])."""
    b1, b2 = betas
    params = [p.copy() for p in params]
    state = [dict(exp_avg=np.zeros_like(p), exp_avg_var=np.zeros_like(p)) for p in params]
    if amsgrad:
        for st, p in zip(state, params):
            st["max_exp_avg_var"] = np.zeros_like(p)
    for t, grads in enumerate(grads_per_step, start=1):
        bias1 = 1.0 - b1 ** t
        bias2 = 1.0 - b2 ** t
        for p, g, st in zip(params, grads, state):
            g = -g if maximize else g.copy()
            if weight_decay:
                if decoupled_weight_decay:
                    p *= 1.0 - lr * weight_decay
                else:
                    g = g + weight_decay * p
            m, s = st["exp_avg"], st["exp_avg_var"]
            m[...] = b1 * m + (1.0 - b1) * g
            s[...] = b2 * s + (1.0 - b2) * (g - m) ** 2 + eps
            if amsgrad:
                smax = st["max_exp_avg_var"]
                smax[...] = np.maximum(smax, s)
                s = smax
            if not rectify:
                denom = np.sqrt(s) / math.sqrt(bias2) + eps
                p -= lr / bias1 * m / denom
                continue
            rho_inf = 2.0 / (1.0 - b2) - 1.0
            rho = rho_inf - 2.0 * t * b2 ** t / bias2
            if rho < 5.0:
                p -= lr / bias1 * m
            else:
                r = math.sqrt(bias2 * (rho - 4.0) / (rho_inf - 4.0) * (rho - 2.0) / rho
                              * rho_inf / (rho_inf - 2.0))
                p -= lr * r / bias1 * m / (np.sqrt(s) + eps)
    return params, state


def _opts_id(o):
    parts = []
    for k, v in o.items():
        if k == "betas":
            parts.append(f"b{v[0]:g}-{v[1]:g}")
        elif v is True:
            parts.append({"amsgrad": "ams", "maximize": "max"}.get(k, k))
        elif v is False:
            parts.append({"decoupled_weight_decay": "L2"}.get(k, f"no-{k}"))
        else:
            parts.append(f"{k}{v:g}")
    return "-".join(parts) or "defaults"


def _configs():
    for ams, (wd, dec), mx in itertools.product(
            (False, True), ((0.0, True), (0.1, True), (0.1, False)), (False, True)):
        o = {}
        if ams:
            o["amsgrad"] = True
        if wd:
            o["weight_decay"] = wd
            if not dec:
                o["decoupled_weight_decay"] = False
        if mx:
            o["maximize"] = True
        yield o
    yield dict(lr=0.01, betas=(0.5, 0.9))
    yield dict(lr=1e-4, betas=(0.0, 0.99), eps=1e-8, amsgrad=True)  # m = g: the belief is eps
    yield dict(lr=1e-2, eps=1e-3, weight_decay=1.0)
    yield dict(lr=1e-2, eps=0.0)
    yield dict(rectify=True)
    yield dict(rectify=True, amsgrad=True, weight_decay=0.1, maximize=True)
    yield dict(rectify=True, betas=(0.5, 0.9), weight_decay=0.1, decoupled_weight_decay=False)


CONFIGS = list(_configs())


def grads_sequence(rng, shapes, dtype, steps=STEPS):
    # A drifting mean plus noise: m, (g - m) and the belief all vary over the run.
    drift = [rng.standard_normal(s) for s in shapes]
    return [[(d * math.cos(t / 10) + rng.standard_normal(d.shape)).astype(dtype)
             for d in drift] for t in range(steps)]


def assert_close(opt, params, ref_params, ref_state, dtype, steps=STEPS):
    tol = TOL[dtype]
    for i, (p, rp) in enumerate(zip(params, ref_params)):
        np.testing.assert_allclose(p, rp, err_msg=f"params[{i}]", **tol)
        st = opt.state[i]
        assert st["step"] == steps
        assert sorted(k for k in st if k != "step") == sorted(ref_state[i])
        for k, a in ref_state[i].items():
            assert st[k].dtype == dtype
            np.testing.assert_allclose(st[k], a, err_msg=f"state[{i}][{k!r}]", **tol)


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("options", CONFIGS, ids=_opts_id)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_matches_paper(dtype, options, impl):
    rng = np.random.default_rng(sum(map(ord, _opts_id(options))))
    params = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = grads_sequence(rng, SHAPES, dtype)
    ref_params, ref_state = belief_reference(params, grads, **options)
    opt = adamcore.AdaBelief(params, **options, impl=impl)
    for g in grads:
        opt.step(g)
    assert_close(opt, params, ref_params, ref_state, dtype)


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_param_groups_match_paper(dtype, impl):
    rng = np.random.default_rng(3)
    group_opts = [dict(lr=0.1), dict(lr=1e-3, amsgrad=True, weight_decay=0.1),
                  dict(betas=(0.5, 0.9), maximize=True, eps=1e-6, weight_decay=0.5,
                       decoupled_weight_decay=False)]
    shapes = [[(5,), (2, 3)], [(40,)], [(7, 7)]]
    params = [[rng.standard_normal(s).astype(dtype) for s in group] for group in shapes]
    grads = [grads_sequence(rng, group, dtype) for group in shapes]
    initial = [[p.copy() for p in ps] for ps in params]
    opt = adamcore.AdaBelief([{"params": ps, **o} for ps, o in zip(params, group_opts)],
                             lr=0.01, impl=impl)
    for t in range(STEPS):
        opt.step([g for group in grads for g in group[t]])
    k = 0
    for ps, p0s, gs, o in zip(params, initial, grads, group_opts):
        ref_params, ref_state = belief_reference(p0s, gs, **{"lr": 0.01, **o})
        for i, (p, rp) in enumerate(zip(ps, ref_params)):
            np.testing.assert_allclose(p, rp, err_msg=f"params[{k}]", **TOL[dtype])
            for key, a in ref_state[i].items():
                np.testing.assert_allclose(opt.state[k][key], a, err_msg=f"state[{k}][{key}]",
                                           **TOL[dtype])
            k += 1


@requires_kernel
@pytest.mark.parametrize("n_threads", [1, 2], ids=lambda t: f"t{t}")
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_large_tensor_matches_paper(dtype, n_threads):
    rng = np.random.default_rng(8)
    shapes = [(3 * PARALLEL_MIN + 11,)]
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    grads = grads_sequence(rng, shapes, dtype, steps=20)
    options = dict(lr=0.01, amsgrad=True, weight_decay=0.1, maximize=True)
    ref_params, ref_state = belief_reference(params, grads, **options)
    opt = adamcore.AdaBelief(params, **options, n_threads=n_threads, impl="c")
    for g in grads:
        opt.step(g)
    assert_close(opt, params, ref_params, ref_state, dtype, steps=20)


def test_defaults_are_the_reference_implementations():
    """adabelief-pytorch 0.2's defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-16,
    weight_decay 0, weight_decouple True, amsgrad False; rectify off, as in
    the paper's algorithm (the package turns it on by default)."""
    d = adamcore.AdaBelief([np.zeros(3, np.float32)]).defaults
    assert d == dict(lr=1e-3, betas=(0.9, 0.999), eps=1e-16, weight_decay=0.0, amsgrad=False,
                     decoupled_weight_decay=True, rectify=False, maximize=False)


# ---- the "belief": what distinguishes AdaBelief from Adam ---------------------

def _constant_gradient_run(cls, dtype, impl, steps, **options):
    """``steps`` steps with the same gradient, whose magnitudes span six decades
    and both signs; returns (optimizer, grad, the last step's update)."""
    c = (np.array([1e-3, -1e-2, 0.3, -1.0, 7.0, -50.0, 1e3]) * np.ones((3, 1))).ravel()
    grad = c.astype(dtype)
    p = np.zeros_like(grad)
    opt = cls([p], impl=impl, **options)
    for _ in range(steps - 1):
        opt.step([grad])
    before = p.copy()
    opt.step([grad])
    return opt, grad, p.astype(np.float64) - before


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_constant_gradient_belief_goes_to_eps(dtype, impl):
    """With a gradient that never changes, g - m vanishes: AdaBelief's s decays
    to its floor eps/(1-beta2) whatever |g| is, and the step grows to
    lr*g/sqrt(eps/(1-beta2)): large, and proportional to g. Adam's v tracks g**2
    instead, and its step stays lr*sign(g). Using g**2 (Adam's v) in place of
    the belief, or leaving eps out of s, fails this."""
    lr, eps, betas = 1e-3, 1e-16, (0.5, 0.5)
    steps = 120  # 0.5**120: every trace of the early (g - m)**2 is far below eps
    opt, g, step = _constant_gradient_run(adamcore.AdaBelief, dtype, impl, steps, lr=lr,
                                          betas=betas, eps=eps)
    s = opt.state[0]["exp_avg_var"].astype(np.float64)
    floor = eps / (1 - betas[1])                          # the fixed point of s = b2*s + eps
    # The same for |g| = 1e-3 and 1e3 (float32 leaves g - m at an ulp of g: 1e-5 of s).
    np.testing.assert_allclose(s, floor, rtol=1e-3)
    np.testing.assert_allclose(opt.state[0]["exp_avg"], g, rtol=1e-6)
    expected = -lr * g.astype(np.float64) / (math.sqrt(floor) + eps)
    np.testing.assert_allclose(step, expected, rtol=1e-4)
    assert np.all(np.abs(step) > 1e6 * lr * np.abs(g))

    adam, _, adam_step = _constant_gradient_run(adamcore.Adam, dtype, impl, steps, lr=lr,
                                                betas=betas, eps=1e-8)
    np.testing.assert_allclose(adam.state[0]["exp_avg_sq"], g.astype(np.float64) ** 2,
                               rtol=1e-5)
    np.testing.assert_allclose(adam_step, -lr * np.sign(g), rtol=1e-4)


@pytest.mark.parametrize("impl", IMPL_PARAMS)
def test_noisy_gradient_belief_is_the_variance(impl):
    """With g = mu + noise (unit variance), AdaBelief's s estimates the spread
    of g around its EMA m, E[(g - m)**2] = 0.81 * (1 + Var(m)) = 0.81 * (1 +
    0.01/0.19) ~ 0.853 whatever mu is, while Adam's v estimates E[g**2] =
    mu**2 + 1. Both share m, so AdaBelief's step is sqrt(v/s) ~ 32.5 times
    Adam's for mu = 30. (beta2 = 0.99: the start-up transient, when m is still
    far from mu, has decayed by 0.99**1000 at the end.)"""
    rng = np.random.default_rng(0)
    n, steps, lr = 2000, 1000, 1e-6
    opts = dict(lr=lr, betas=(0.9, 0.99))
    pb, pa = np.zeros(n), np.zeros(n)
    belief = adamcore.AdaBelief([pb], impl=impl, eps=1e-16, **opts)
    adam = adamcore.Adam([pa], impl=impl, eps=1e-16, **opts)
    for _ in range(steps - 1):
        g = 30.0 + rng.standard_normal(n)
        belief.step([g])
        adam.step([g])
    before_b, before_a = pb.copy(), pa.copy()
    g = 30.0 + rng.standard_normal(n)
    belief.step([g])
    adam.step([g])
    bc2 = 1 - 0.99 ** steps
    s = belief.state[0]["exp_avg_var"].mean() / bc2
    v = adam.state[0]["exp_avg_sq"].mean() / bc2
    assert 0.80 < s < 0.91, s
    assert 880 < v < 920, v
    assert_same = np.testing.assert_array_equal
    assert_same(belief.state[0]["exp_avg"], adam.state[0]["exp_avg"])  # the same m
    ratio = np.mean((pb - before_b) / (pa - before_a))
    assert 30 < ratio < 35, ratio
