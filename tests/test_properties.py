"""Property tests: random shapes, dtypes, layouts, hyperparameters, options and
states; the C kernel always gives the reference's bits (NaN matching NaN:
eps = 0 with v = 0 is allowed and gives 0/0)."""

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

import adamcore  # noqa: E402
from adamcore import _impl, functional, kinds, rows  # noqa: E402
from adamcore.plan import Bucket  # noqa: E402
from helpers import (  # noqa: E402
    DTYPES,
    ROW_OPTIONS,
    SIMD_LEVELS,
    assert_optimizers_equal,
    assert_same_values,
    assert_unchanged,
    make_hyper,
    random_values,
    ref_adam_step,
    requires_kernel,
    row_optimizer,
    simd_level,
    snapshot,
)

pytestmark = requires_kernel

SETTINGS = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def elements(dtype, lo, hi):
    width = np.dtype(dtype).itemsize * 8
    return st.floats(lo, hi, width=width, allow_nan=False, allow_infinity=False)


def nonneg(dtype, hi):
    # Second moments from real runs are never -0.0 (tests/test_kernel_vs_reference.py
    # has its own test for a -0.0 state).
    return elements(dtype, 0.0, hi).map(abs)


hypers = st.fixed_dictionaries({
    "lr": st.one_of(st.just(0.0), st.floats(0.0, 1.0)),
    "beta1": st.one_of(st.just(0.0), st.floats(0.0, 1.0, exclude_max=True)),
    "beta2": st.one_of(st.just(0.0), st.floats(0.0, 1.0, exclude_max=True)),
    "eps": st.one_of(st.just(0.0), st.floats(0.0, 1e-2)),
    "weight_decay": st.one_of(st.just(0.0), st.floats(0.0, 1.0)),
    "decoupled": st.booleans(),
    "maximize": st.booleans(),
    "eps_mode": st.sampled_from(["torch", "keras"]),
})


@st.composite
def problems(draw, max_side=5):
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    shape = draw(hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=max_side))
    order = draw(st.sampled_from("CF"))
    amsgrad = draw(st.booleans())
    n_steps = draw(st.integers(1, 5))

    def arr(elems):
        return np.asarray(draw(hnp.arrays(dtype, shape, elements=elems)), order=order)

    state = {"param": arr(elements(dtype, -1e3, 1e3)), "exp_avg": arr(elements(dtype, -10, 10)),
             "exp_avg_sq": arr(nonneg(dtype, 100))}
    if amsgrad:
        state["max_exp_avg_sq"] = arr(nonneg(dtype, 100))
    grads = [arr(elements(dtype, -1e3, 1e3)) for _ in range(n_steps)]
    return dict(state=state, grads=grads, hyper=draw(hypers),
                first_step=draw(st.one_of(st.integers(1, 20), st.integers(1, 10**7))),
                n_threads=draw(st.sampled_from([1, 2, 3, None, -1])),
                simd=draw(st.sampled_from(SIMD_LEVELS)))


def run(step_fn, prob, **extra):
    state = {k: a.copy(order="K") for k, a in prob["state"].items()}
    for k, g in enumerate(prob["grads"]):
        step_fn(state["param"], g, state["exp_avg"], state["exp_avg_sq"],
                max_exp_avg_sq=state.get("max_exp_avg_sq"), step=prob["first_step"] + k,
                beta1=prob["hyper"]["beta1"], beta2=prob["hyper"]["beta2"],
                **{k: v for k, v in prob["hyper"].items() if k not in ("beta1", "beta2")},
                **extra)
    return state


@SETTINGS
@given(problems())
def test_c_equals_reference(prob):
    grads_snap = snapshot(prob["grads"])
    with np.errstate(all="ignore"):
        expected = run(ref_adam_step, prob)
        with simd_level(prob["simd"]):
            got = run(functional.adam_step, prob, impl="c", n_threads=prob["n_threads"])
    assert_unchanged(prob["grads"], grads_snap, "grad")
    for k in expected:
        assert got[k].flags.f_contiguous == expected[k].flags.f_contiguous
        assert_same_values(got[k], expected[k], k)


@st.composite
def buckets(draw):
    """A multi-tensor bucket: several small tensors of one dtype, one hyper."""
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    amsgrad = draw(st.booleans())
    n = draw(st.integers(1, 6))
    sizes = draw(st.lists(st.integers(0, 40), min_size=n, max_size=n))
    tensors = []
    for size in sizes:
        t = [draw(hnp.arrays(dtype, size, elements=elements(dtype, -1e3, 1e3))),
             draw(hnp.arrays(dtype, size, elements=elements(dtype, -1e3, 1e3))),
             draw(hnp.arrays(dtype, size, elements=elements(dtype, -10, 10))),
             draw(hnp.arrays(dtype, size, elements=nonneg(dtype, 100)))]
        if amsgrad:
            t.append(draw(hnp.arrays(dtype, size, elements=nonneg(dtype, 100))))
        tensors.append(t)
    h = draw(hypers)
    step = draw(st.integers(1, 1000))
    hyper = make_hyper("adam", amsgrad=amsgrad, **h)
    scale = draw(st.sampled_from([1.0, 0.37, 1e-3]))
    return tensors, hyper, step, scale, draw(st.sampled_from([1, 2, 3]))


@SETTINGS
@given(buckets())
def test_bucket_c_equals_numpy(case):
    tensors, hyper, step, scale, n_threads = case
    out = {}
    for impl in ("numpy", "c"):
        ts = [[a.copy() for a in t] for t in tensors]
        states = ([t[2] for t in ts], [t[3] for t in ts],
                  [t[4] for t in ts] if hyper.amsgrad else None)
        bucket = Bucket(kinds.ADAM, hyper, step, [t[0] for t in ts], [t[1] for t in ts], states,
                        list(range(len(ts))), scale)
        with np.errstate(all="ignore"):
            _impl.bucket_stepper(impl)([bucket], n_threads)
        out[impl] = ts
    for k, (tc, tn) in enumerate(zip(out["c"], out["numpy"])):
        for j, (a, b) in enumerate(zip(tc, tn)):
            assert_same_values(a, b, f"tensor {k} array {j}")


@SETTINGS
@given(st.data())
def test_optimizer_c_equals_numpy(data):
    """Random groups, dtypes and None grads over a few steps."""
    n_params = data.draw(st.integers(1, 4))
    params = []
    for _ in range(n_params):
        dtype = data.draw(st.sampled_from([np.float32, np.float64]))
        shape = data.draw(hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=6))
        params.append(data.draw(hnp.arrays(dtype, shape, elements=elements(dtype, -10, 10))))
    h = data.draw(hypers)
    options = dict(lr=h["lr"], betas=(h["beta1"], h["beta2"]), eps=h["eps"] or 1e-8,
                   weight_decay=h["weight_decay"], decoupled_weight_decay=h["decoupled"],
                   maximize=h["maximize"], eps_mode=h["eps_mode"],
                   amsgrad=data.draw(st.booleans()))
    opts = {impl: adamcore.Adam([p.copy() for p in params], impl=impl, **options)
            for impl in ("c", "numpy")}
    for _ in range(data.draw(st.integers(1, 4))):
        grads = [data.draw(st.one_of(st.none(), hnp.arrays(p.dtype, p.shape,
                                                           elements=elements(p.dtype, -10, 10))))
                 for p in params]
        with np.errstate(all="ignore"):
            for opt in opts.values():
                opt.step(grads)
    c, n = opts["c"], opts["numpy"]
    for p, q in zip(c.param_groups[0]["params"], n.param_groups[0]["params"]):
        assert_same_values(p, q, "param")
    assert sorted(c.state) == sorted(n.state)
    for i in c.state:
        assert c.state[i]["step"] == n.state[i]["step"]
        for k in c.state[i]:
            if k != "step":
                assert_same_values(c.state[i][k], n.state[i][k], f"state[{i}][{k!r}]")


# ---- row gradients (adamcore.rows) ------------------------------------------------------------

@st.composite
def row_steps(draw):
    """A table, a few RowGrads of random length, index dtype and duplication,
    and the semantics, options, dtype and thread count they run with."""
    dtype = draw(st.sampled_from(DTYPES))
    n_rows, width = draw(st.integers(1, 300)), draw(st.integers(1, 40))
    hot = draw(st.integers(1, n_rows))
    seed = draw(st.integers(0, 2 ** 32 - 1))
    semantics = draw(st.sampled_from(list(rows.SEMANTICS)))
    options = draw(st.sampled_from(ROW_OPTIONS[semantics]))
    clip = draw(st.sampled_from([None, 0.1, 1e3]))
    steps = [(draw(st.integers(0, 400)), draw(st.sampled_from([np.int32, np.int64])))
             for _ in range(draw(st.integers(1, 4)))]
    return dtype, n_rows, width, hot, seed, semantics, options, clip, steps, draw(
        st.sampled_from([1, 2, 3]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(row_steps())
def test_any_row_steps_give_the_mirrors_bits(case):
    dtype, n_rows, width, hot, seed, semantics, options, clip, steps, n_threads = case
    rng = np.random.default_rng(seed)
    w = random_values(rng, (n_rows, width), dtype, spread=False)
    grads = [adamcore.RowGrad(rng.integers(0, hot, k).astype(index_dtype),
                              random_values(rng, (k, width), dtype))
             for k, index_dtype in steps]
    opts = []
    for impl in ("c", "numpy"):
        opt = row_optimizer(semantics, [w.copy()], impl=impl, n_threads=n_threads,
                            max_grad_norm=clip, **options)
        for g in grads:
            opt.step([g])
        opts.append(opt)
    assert_optimizers_equal(*opts)
    assert opts[0].last_grad_norm == opts[1].last_grad_norm
