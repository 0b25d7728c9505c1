"""Properties of Adam itself, on both implementations: the bound on a step's
size, and invariance to the scale of the gradient."""

import math

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from adamcore import functional  # noqa: E402
from helpers import IMPL_PARAMS, assert_bitwise_equal  # noqa: E402

SETTINGS = settings(max_examples=60, deadline=None)


def step_bound(beta1, beta2, t):
    """The largest |step| / lr of the bias-corrected update at step t, eps = 0.

    With w_k = (1-beta1) beta1^k / (1-beta1^t) and u_k = (1-beta2) beta2^k /
    (1-beta2^t) (each summing to 1 over k < t), m_hat = sum w_k g_{t-k} and
    v_hat = sum u_k g_{t-k}^2, so by Cauchy-Schwarz
        |m_hat| / sqrt(v_hat) <= sqrt(sum_k w_k^2 / u_k),
    with equality for g_{t-k} proportional to w_k / u_k. Kingma & Ba (sec. 2.1)
    give alpha (1-beta1)/sqrt(1-beta2) (or alpha) as an approximate bound; it
    is not an upper bound: this one is larger for large t (7.3 vs 3.2 at
    beta1 = 0.9, beta2 = 0.999), and attained (see the tightness test).
    """
    total = 0.0
    for k in range(t):
        w = (1 - beta1) * beta1 ** k / (1 - beta1 ** t)
        u = (1 - beta2) * beta2 ** k / (1 - beta2 ** t)
        total += w * w / u
    return math.sqrt(total)


def slack(dtype, n_steps):
    """Relative rounding allowance: each step rounds m, v, the scalars, the
    quotient and the param update a handful of times, each within one unit
    roundoff u relative to the terms of the bound (the error of m is relative
    to sum w_k |g_k|, itself <= the bound times sqrt(v_hat)), and the state
    is carried over n_steps; 16 u per step is several times that."""
    return 16 * (n_steps + 1) * np.finfo(dtype).eps / 2


def magnitudes(rng, shape, lo=-3, hi=3):
    """Nonzero values with random signs, magnitudes 10^lo..10^hi: no underflow
    of g*g and no overflow, in float32 too."""
    return rng.choice([-1.0, 1.0], shape) * 10.0 ** rng.uniform(lo, hi, shape)


@st.composite
def runs(draw):
    return dict(dtype=draw(st.sampled_from([np.float32, np.float64])),
                n=draw(st.integers(1, 40)), n_steps=draw(st.integers(1, 8)),
                lr=draw(st.floats(1e-4, 1.0)),
                # no tiny beta1: beta1 * m would underflow, and scaling by c be inexact
                beta1=draw(st.one_of(st.just(0.0), st.floats(1e-3, 0.99))),
                beta2=draw(st.floats(0.5, 0.9999)), eps=draw(st.sampled_from([0.0, 1e-8, 1e-3])),
                amsgrad=draw(st.booleans()), maximize=draw(st.booleans()),
                eps_mode=draw(st.sampled_from(["torch", "keras"])),
                seed=draw(st.integers(0, 2 ** 32 - 1)))


def steps(run, grads, m0=None, v0=None, impl="numpy"):
    """Run len(grads) steps from param 0 (and zero state unless given); return
    the param after each step and the final state."""
    dtype, n = run["dtype"], run["n"]
    p = np.zeros(n, dtype)
    m = np.zeros(n, dtype) if m0 is None else m0.copy()
    v = np.zeros(n, dtype) if v0 is None else v0.copy()
    vmax = v.copy() if run["amsgrad"] else None
    history = []
    for t, g in enumerate(grads, start=1):
        functional.adam_step(p, g, m, v, max_exp_avg_sq=vmax, step=t, lr=run["lr"],
                             beta1=run["beta1"], beta2=run["beta2"], eps=run["eps"],
                             maximize=run["maximize"], eps_mode=run["eps_mode"], impl=impl)
        history.append(p.copy())
    return history, m, v


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@SETTINGS
@given(run=runs())
def test_step_is_bounded(run, impl):
    """|p_t - p_{t-1}| <= lr * step_bound(beta1, beta2, t) * (1 + slack) for
    every element and step, from zero state (weight_decay = 0; eps >= 0 and
    AMSGrad only make the step smaller)."""
    rng = np.random.default_rng(run["seed"])
    grads = [magnitudes(rng, run["n"]).astype(run["dtype"]) for _ in range(run["n_steps"])]
    history, _, _ = steps(run, grads, impl=impl)
    previous = np.zeros(run["n"])
    for t, p in enumerate(history, start=1):
        p = p.astype(np.float64)
        limit = run["lr"] * step_bound(run["beta1"], run["beta2"], t)
        worst = np.max(np.abs(p - previous))
        assert worst <= limit * (1 + slack(run["dtype"], t)), (t, worst, limit)
        previous = p


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_step_bound_is_attained(dtype, impl):
    """Grads g_{t-k} ~ w_k / u_k reach the bound at step t (from zero state, eps
    = 0), so the bound tested above is the exact supremum, not a loose one."""
    beta1, beta2, t, lr = 0.9, 0.999, 400, 1e-2  # past t ~ 250 the paper's figure is exceeded
    w = [(1 - beta1) * beta1 ** k for k in range(t)]
    u = [(1 - beta2) * beta2 ** k for k in range(t)]
    grads = [np.full(1, w[t - s] / u[t - s], dtype) for s in range(1, t + 1)]
    run = dict(dtype=dtype, n=1, lr=lr, beta1=beta1, beta2=beta2, eps=0.0, amsgrad=False,
               maximize=False, eps_mode="torch")
    history, _, _ = steps(run, grads, impl=impl)
    step = abs(float(history[-1][0]) - float(history[-2][0]))
    bound = lr * step_bound(beta1, beta2, t)
    assert bound > lr * (1 - beta1) / math.sqrt(1 - beta2)  # the paper's figure is exceeded
    assert abs(step - bound) <= bound * slack(dtype, t), (step, bound)


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@SETTINGS
@given(run=runs(), log2_c=st.integers(-8, 8))
def test_update_is_invariant_to_gradient_scale(run, log2_c, impl):
    """With eps = 0 and weight_decay = 0, grads c*g and state (c*m, c^2*v) give
    bitwise the same params as g and (m, v), and state scaled by c and c^2.

    c is a power of two, so every product by c (and c^2, c*(1-beta1), ...)
    is exact barring overflow and underflow (magnitudes keep clear of both),
    sqrt(c^2 v) = c sqrt(v) exactly (sqrt is correctly rounded), and
    (c m) / (c d) = m / d. For other c each of those products rounds
    differently, so the invariance holds only to rounding.
    """
    run = {**run, "eps": 0.0}
    c = 2.0 ** log2_c
    rng = np.random.default_rng(run["seed"])
    dtype, n = run["dtype"], run["n"]
    grads = [magnitudes(rng, n).astype(dtype) for _ in range(run["n_steps"])]
    m0 = magnitudes(rng, n, -2, 1).astype(dtype)
    v0 = np.abs(magnitudes(rng, n, -2, 2)).astype(dtype)
    base, m, v = steps(run, grads, m0, v0, impl=impl)
    scaled, m_c, v_c = steps(run, [g * dtype(c) for g in grads], m0 * dtype(c),
                             v0 * dtype(c * c), impl=impl)
    for t, (a, b) in enumerate(zip(base, scaled), start=1):
        assert_bitwise_equal(b, a, f"param after step {t}")
    assert_bitwise_equal(m_c, m * dtype(c), "exp_avg")
    assert_bitwise_equal(v_c, v * dtype(c * c), "exp_avg_sq")
