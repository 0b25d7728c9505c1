"""The math, checked against formulas written here (no torch needed).

- eps_mode="keras" against the Keras/TF form, computed independently in float64:
      m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g*g
      p -= lr * sqrt(1-b2**t)/(1-b1**t) * m / (sqrt(v) + eps)
- the default eps_mode against adamcore.textbook.adam_step (the tutorial form).
"""

import math

import numpy as np
import pytest

import adamcore
from adamcore import functional, textbook
from helpers import DTYPES, IMPL_PARAMS

STEPS = 100
TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-14)}
HYPERS = [
    dict(lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-7),
    dict(lr=0.05, beta1=0.5, beta2=0.9, eps=1e-3),
    dict(lr=0.01, beta1=0.0, beta2=0.99, eps=1e-8),
]


def hyper_id(h):
    return f"lr{h['lr']}-b{h['beta1']}-{h['beta2']}-eps{h['eps']}"


def keras_formula(p, m, v, grads, lr, beta1, beta2, eps):
    """The Keras/TF Adam update in float64, written from the formula."""
    p, m, v = (np.array(a, np.float64) for a in (p, m, v))
    for t, g in enumerate(grads, start=1):
        g = np.asarray(g, np.float64)
        m = beta1 * m + (1 - beta1) * g
        v = beta2 * v + (1 - beta2) * g * g
        p = p - lr * math.sqrt(1 - beta2 ** t) / (1 - beta1 ** t) * m / (np.sqrt(v) + eps)
    return p, m, v


def make(rng, dtype, n=257):
    p = rng.standard_normal(n).astype(dtype)
    grads = [rng.standard_normal(n).astype(dtype) for _ in range(STEPS)]
    return p, grads


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("hyper", HYPERS, ids=hyper_id)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_keras_mode_matches_keras_formula(dtype, hyper, impl):
    rng = np.random.default_rng(1)
    p, grads = make(rng, dtype)
    m, v = np.zeros_like(p), np.zeros_like(p)
    exp_p, exp_m, exp_v = keras_formula(p, m, v, grads, **hyper)
    for t, g in enumerate(grads, start=1):
        functional.adam_step(p, g, m, v, step=t, eps_mode="keras", impl=impl, **hyper)
    tol = TOL[dtype]
    np.testing.assert_allclose(p, exp_p, err_msg="param", **tol)
    np.testing.assert_allclose(m, exp_m, err_msg="exp_avg", **tol)
    np.testing.assert_allclose(v, exp_v, err_msg="exp_avg_sq", **tol)


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_keras_mode_through_the_optimizer(dtype, impl):
    rng = np.random.default_rng(2)
    p, grads = make(rng, dtype)
    hyper = HYPERS[1]
    exp_p, exp_m, exp_v = keras_formula(p, np.zeros_like(p), np.zeros_like(p), grads, **hyper)
    opt = adamcore.Adam([p], lr=hyper["lr"], betas=(hyper["beta1"], hyper["beta2"]),
                        eps=hyper["eps"], eps_mode="keras", impl=impl)
    for g in grads:
        opt.step(g)
    tol = TOL[dtype]
    np.testing.assert_allclose(p, exp_p, **tol)
    np.testing.assert_allclose(opt.state[0]["exp_avg"], exp_m, **tol)
    np.testing.assert_allclose(opt.state[0]["exp_avg_sq"], exp_v, **tol)


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_keras_and_torch_modes_differ_only_by_eps(dtype, impl):
    """The two eps placements agree when eps = 0 and differ when eps is large: the
    keras test above can tell them apart."""
    out = {}
    for eps in (0.0, 0.1):
        for mode in ("torch", "keras"):
            p, grads = make(np.random.default_rng(3), dtype, n=64)
            p, grads = p + dtype(3), [g + dtype(0.5) for g in grads[:10]]  # no 0/0 at eps 0
            m, v = np.zeros_like(p), np.zeros_like(p)
            for t, g in enumerate(grads, start=1):
                functional.adam_step(p, g, m, v, step=t, lr=0.01, beta1=0.9, beta2=0.999,
                                     eps=eps, eps_mode=mode, impl=impl)
            out[eps, mode] = p
    np.testing.assert_allclose(out[0.0, "torch"], out[0.0, "keras"], **TOL[dtype])
    assert np.abs(out[0.1, "torch"] - out[0.1, "keras"]).max() > 1e-4


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("hyper", HYPERS, ids=hyper_id)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_default_mode_matches_textbook(dtype, hyper, impl):
    """adamcore.textbook.adam_step is the tutorial formula (eps after un-biasing v):
    an oracle independent of torch and of adamcore.reference."""
    rng = np.random.default_rng(4)
    p, grads = make(rng, dtype)
    m, v = np.zeros_like(p), np.zeros_like(p)
    tp, tm, tv = (a.astype(np.float64) for a in (p, m, v))
    for t, g in enumerate(grads, start=1):
        functional.adam_step(p, g, m, v, step=t, impl=impl, **hyper)
        textbook.adam_step(tp, g.astype(np.float64), tm, tv, t, **hyper)
    tol = TOL[dtype]
    np.testing.assert_allclose(p, tp, err_msg="param", **tol)
    np.testing.assert_allclose(m, tm, err_msg="exp_avg", **tol)
    np.testing.assert_allclose(v, tv, err_msg="exp_avg_sq", **tol)
