"""The C kernel against the pure-NumPy reference, bit for bit.

Every test runs several steps and then compares params AND every state array
(exp_avg, exp_avg_sq, max_exp_avg_sq) with exact bitwise equality: the kernel
and adamcore.reference perform the same IEEE operations in the same order, so
no tolerance is allowed, whatever the dtype, size, thread count, SIMD level,
alignment or memory layout.
"""

import dataclasses
import itertools

import numpy as np
import pytest

import adamcore
from adamcore import _impl, functional
from helpers import (
    DTYPES,
    PARALLEL_MIN,
    SIMD_LEVELS,
    aligned_empty,
    assert_bitwise_equal,
    assert_optimizers_equal,
    assert_same_values,
    make_bucket,
    random_values,
    ref_adam_step,
    requires_kernel,
    simd_level,
)

pytestmark = requires_kernel

STEPS = 10
HYPER = dict(lr=0.01, beta1=0.9, beta2=0.999, eps=1e-8)
SMALL_SIZES = list(range(34)) + [1023, 4097]
LARGE = 10**6
THREADS = (1, 2, 3)

# (amsgrad, maximize, weight_decay, decoupled, eps_mode): every combination.
WD_MODES = ((0.0, False), (0.0, True), (0.1, False), (0.1, True))
OPTIONS = [
    dict(amsgrad=ams, maximize=mx, weight_decay=wd, decoupled=dec, eps_mode=mode)
    for ams, mx, (wd, dec), mode in itertools.product(
        (False, True), (False, True), WD_MODES, ("torch", "keras"))
]
# For the 10**6-element arrays: every value of every option at least once.
LARGE_OPTIONS = [
    dict(amsgrad=False, maximize=False, weight_decay=0.0, decoupled=False, eps_mode="torch"),
    dict(amsgrad=True, maximize=True, weight_decay=0.1, decoupled=False, eps_mode="keras"),
    dict(amsgrad=True, maximize=False, weight_decay=0.1, decoupled=True, eps_mode="torch"),
    dict(amsgrad=False, maximize=True, weight_decay=0.0, decoupled=True, eps_mode="keras"),
]


def opts_id(o):
    wd = "wd0" if not o["weight_decay"] else f"wd{o['weight_decay']}"
    wd += "d" if o["decoupled"] else "c"
    return "-".join(
        (["ams"] if o["amsgrad"] else []) + (["max"] if o["maximize"] else [])
        + [wd, o["eps_mode"]]
    )


def case_id(dtype, n, t, simd, o):
    return f"{np.dtype(dtype).name}-n{n}-t{t}-{simd}-{opts_id(o)}"


# ---- problem construction and stepping ------------------------------------

def make_problem(rng, shape, dtype, amsgrad, steps=STEPS, order="C"):
    """Param, state (not all zero: the kernel must read it) and one grad per step."""
    def arr(values):
        return np.asarray(values, order=order)

    state = {
        "param": arr(random_values(rng, shape, dtype)),
        "exp_avg": arr(random_values(rng, shape, dtype) * dtype(0.01)),
        "exp_avg_sq": arr(np.square(random_values(rng, shape, dtype, spread=False)) * dtype(1e-3)),
    }
    if amsgrad:
        # Sometimes above, sometimes below v: both branches of the maximum.
        state["max_exp_avg_sq"] = arr(
            state["exp_avg_sq"] * rng.uniform(0.5, 1.5, shape).astype(dtype))
    grads = [arr(random_values(rng, shape, dtype)) for _ in range(steps)]
    return state, grads


def copy_state(state, like=None):
    """Copies; with ``like`` (name -> array of the same shape), into those buffers."""
    if like is None:
        return {k: a.copy(order="K") for k, a in state.items()}
    for k, a in state.items():
        np.copyto(like[k], a)
    return like


def run_functional(step_fn, state, grads, opts, first_step=1, **extra):
    """``len(grads)`` steps of ``step_fn`` (functional or reference adam_step) in place."""
    for k, g in enumerate(grads):
        step_fn(
            state["param"], g, state["exp_avg"], state["exp_avg_sq"],
            max_exp_avg_sq=state.get("max_exp_avg_sq"), step=first_step + k,
            weight_decay=opts["weight_decay"], decoupled=opts["decoupled"],
            maximize=opts["maximize"], eps_mode=opts["eps_mode"], **HYPER, **extra,
        )
    return state


def c_step(n_threads):
    def step(*args, **kwargs):
        functional.adam_step(*args, n_threads=n_threads, impl="c", **kwargs)
    return step


def assert_state_equal(got, expected):
    assert sorted(got) == sorted(expected)
    for k in expected:
        assert_bitwise_equal(got[k], expected[k], k)


# ---- the grid ----------------------------------------------------------------

def _small_cases():
    for dtype in DTYPES:
        for li, simd in enumerate(SIMD_LEVELS):
            t = THREADS[li % len(THREADS)]  # one thread count per SIMD level
            for n in SMALL_SIZES:
                for o in OPTIONS:
                    yield pytest.param(dtype, n, t, simd, o, id=case_id(dtype, n, t, simd, o))


@pytest.mark.parametrize("dtype, n, n_threads, simd, opts", list(_small_cases()))
def test_small_sizes_every_option(dtype, n, n_threads, simd, opts):
    rng = np.random.default_rng([n, np.dtype(dtype).itemsize, OPTIONS.index(opts)])
    state, grads = make_problem(rng, n, dtype, opts["amsgrad"])
    expected = run_functional(ref_adam_step, copy_state(state), grads, opts)
    with simd_level(simd):
        got = run_functional(c_step(n_threads), copy_state(state), grads, opts)
    assert_state_equal(got, expected)


def _large_cases():
    # Grouped by (dtype, options) so the reference result is computed once per group.
    for dtype in DTYPES:
        for o in LARGE_OPTIONS:
            for t in THREADS:
                for simd in SIMD_LEVELS:
                    yield pytest.param(dtype, t, simd, o, id=case_id(dtype, LARGE, t, simd, o))


_LARGE_CACHE = {}


def _large_problem(dtype, opts):
    """(initial state, grads, reference result), the last group's only."""
    key = (np.dtype(dtype).name, opts_id(opts))
    if key not in _LARGE_CACHE:
        _LARGE_CACHE.clear()
        rng = np.random.default_rng([LARGE, np.dtype(dtype).itemsize, LARGE_OPTIONS.index(opts)])
        state, grads = make_problem(rng, LARGE, dtype, opts["amsgrad"], steps=1)
        # Distinct grads per step without drawing 10 million numbers each time.
        grads = [np.roll(grads[0], 7919 * k) for k in range(STEPS)]
        expected = run_functional(ref_adam_step, copy_state(state), grads, opts)
        _LARGE_CACHE[key] = (state, grads, expected)
    return _LARGE_CACHE[key]


@pytest.mark.parametrize("dtype, n_threads, simd, opts", list(_large_cases()))
def test_large_threads_and_simd(dtype, n_threads, simd, opts):
    state, grads, expected = _large_problem(dtype, opts)
    with simd_level(simd):
        got = run_functional(c_step(n_threads), copy_state(state), grads, opts)
    assert_state_equal(got, expected)


def test_grid_covers_everything():
    """Every (dtype, size, thread count, SIMD level) and option combination is run."""
    seen = set()
    for case in itertools.chain(_small_cases(), _large_cases()):
        dtype, *rest = case.values
        if len(rest) == 4:
            n, t, simd, o = rest
        else:
            (t, simd, o), n = rest, LARGE
        seen.add((np.dtype(dtype).name, n, t, simd, opts_id(o)))
    sizes = {n for _, n, _, _, _ in seen}
    assert sizes == set(SMALL_SIZES) | {LARGE}
    assert {o for *_, o in seen} == {opts_id(o) for o in OPTIONS}
    combos = {(d, t, s) for d, n, t, s, _ in seen if n == LARGE}
    assert combos == {(np.dtype(d).name, t, s) for d in DTYPES for t in THREADS for s in SIMD_LEVELS}
    for d in DTYPES:
        for n in SMALL_SIZES:
            assert {s for dd, nn, _, s, _ in seen if (dd, nn) == (np.dtype(d).name, n)} == set(SIMD_LEVELS)
    assert LARGE > PARALLEL_MIN * len(THREADS)


# ---- alignment: peel loops and unaligned streams --------------------------------

MISALIGN = ("param", "grad", "exp_avg", "exp_avg_sq", "max_exp_avg_sq", "all")
MISALIGN_SIZES = (1, 2, 15, 16, 17, 31, 33, 257, 4097, 3 * PARALLEL_MIN // 2 + 5)
MISALIGN_OPTS = dict(amsgrad=True, maximize=True, weight_decay=0.1, decoupled=True,
                     eps_mode="torch")


def _offset_copy(a, offset_elems):
    """A copy of 1-D ``a`` in a buffer that starts ``offset_elems`` past ``np.empty``'s start."""
    buf = np.empty(a.size + offset_elems, a.dtype)
    out = buf[offset_elems:]
    out[...] = a
    return out


@pytest.mark.parametrize("simd", SIMD_LEVELS)
@pytest.mark.parametrize("n", MISALIGN_SIZES, ids=lambda n: f"n{n}")
@pytest.mark.parametrize("which", MISALIGN)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_misaligned_start(dtype, which, n, simd):
    """``buf[1:]`` views (one element off) for each array alone, and for all."""
    rng = np.random.default_rng([n, np.dtype(dtype).itemsize, MISALIGN.index(which)])
    state, grads = make_problem(rng, n, dtype, amsgrad=True)
    expected = run_functional(ref_adam_step, copy_state(state), grads, MISALIGN_OPTS)
    shifted = {k: (_offset_copy(a, 1) if which in (k, "all") else a.copy())
               for k, a in state.items()}
    if which in ("grad", "all"):
        grads = [_offset_copy(g, 1) for g in grads]
    with simd_level(simd):
        got = run_functional(c_step(2), shifted, grads, MISALIGN_OPTS)
    assert_state_equal(got, expected)


@pytest.mark.parametrize("simd", SIMD_LEVELS)
@pytest.mark.parametrize("state_offset", ["same", "plus1"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_every_offset_in_a_cache_line(dtype, state_offset, simd):
    """The param at each element offset within a 64-byte line, the state at the
    same offset (aligned vector body after the peel) or one further (unaligned)."""
    itemsize = np.dtype(dtype).itemsize
    for n in (5, 100, 2 * PARALLEL_MIN + 3):
        rng = np.random.default_rng([n, itemsize])
        state, grads = make_problem(rng, n, dtype, amsgrad=True, steps=3)
        expected = run_functional(ref_adam_step, copy_state(state), grads, MISALIGN_OPTS)
        for off in range(64 // itemsize):
            s_off = off if state_offset == "same" else off + 1
            bufs = {k: aligned_empty(n, dtype, off if k == "param" else s_off) for k in state}
            got_grads = []
            for g in grads:
                gg = aligned_empty(n, dtype, s_off)
                gg[...] = g
                got_grads.append(gg)
            with simd_level(simd):
                got = run_functional(c_step(2), copy_state(state, like=bufs), got_grads,
                                     MISALIGN_OPTS)
            for k in expected:
                assert_bitwise_equal(got[k], expected[k], f"{k} (n={n}, param offset {off})")


# ---- multi-dimensional arrays, C and F order ---------------------------------------

SHAPES = [(0, 3), (3, 5), (1, 17), (17, 1), (7, 1, 9), (2, 3, 4, 5), (33, 65), (190, 211)]


@pytest.mark.parametrize("simd", SIMD_LEVELS)
@pytest.mark.parametrize("n_threads", THREADS, ids=lambda t: f"t{t}")
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_multidimensional(dtype, order, shape, n_threads, simd):
    rng = np.random.default_rng([int(np.prod(shape)), len(shape), np.dtype(dtype).itemsize])
    opts = dict(amsgrad=True, maximize=False, weight_decay=0.1, decoupled=False, eps_mode="keras")
    state, grads = make_problem(rng, shape, dtype, amsgrad=True, order=order)
    if order == "F" and len(shape) > 1 and min(shape) > 1:
        assert state["param"].flags.f_contiguous and not state["param"].flags.c_contiguous
        assert all(g.flags.f_contiguous for g in grads)
    expected = run_functional(ref_adam_step, copy_state(state), grads, opts)
    with simd_level(simd):
        got = run_functional(c_step(n_threads), copy_state(state), grads, opts)
    for k in expected:
        assert got[k].flags.f_contiguous == expected[k].flags.f_contiguous
        assert_bitwise_equal(got[k], expected[k], k)
    # The F-order result is the C-order result of the same values, element by element.
    if order == "F":
        c_state = {k: np.ascontiguousarray(a) for k, a in state.items()}
        c_grads = [np.ascontiguousarray(g) for g in grads]
        c_got = run_functional(c_step(n_threads), c_state, c_grads, opts)
        for k in expected:
            assert_bitwise_equal(c_got[k], expected[k], k)


# ---- multi-tensor buckets: the thread split crosses tensor boundaries ----------------

def adam_bucket(rng, dtype, sizes, opts, step):
    amsgrad = opts["amsgrad"]
    params, grads, ms, vs, vmaxs = [], [], [], [], ([] if amsgrad else None)
    for n in sizes:
        off = int(rng.integers(0, 64 // np.dtype(dtype).itemsize))

        def put(values):
            a = aligned_empty(n, dtype, off)
            a[...] = values
            return a

        params.append(put(random_values(rng, n, dtype)))
        grads.append(put(random_values(rng, n, dtype)))
        ms.append(put(random_values(rng, n, dtype) * dtype(0.01)))
        vs.append(put(np.square(random_values(rng, n, dtype, spread=False))))
        if amsgrad:
            vmaxs.append(put(vs[-1] * rng.uniform(0.5, 1.5, n).astype(dtype)))
    return make_bucket("adam", params, grads, (ms, vs, vmaxs), step=step, grad_scale=0.37,
                       indices=list(range(len(sizes))), lr=HYPER["lr"], beta1=HYPER["beta1"],
                       beta2=HYPER["beta2"], eps=HYPER["eps"], weight_decay=opts["weight_decay"],
                       decoupled=opts["decoupled"], maximize=opts["maximize"],
                       eps_mode=opts["eps_mode"], amsgrad=amsgrad)


def copy_bucket(bucket):
    def cp(arrays):
        out = []
        for a in arrays:
            b = aligned_empty(a.size, a.dtype, (a.__array_interface__["data"][0] % 64) // a.itemsize)
            b[...] = a
            out.append(b)
        return out

    return dataclasses.replace(bucket, params=cp(bucket.params), states=tuple(
        None if s is None else cp(s) for s in bucket.states))


def bucket_arrays(bucket):
    out = {}
    for k in range(len(bucket.params)):
        out[f"params[{k}]"] = bucket.params[k]
        for name, s in zip(("exp_avgs", "exp_avg_sqs", "max_exp_avg_sqs"), bucket.states):
            if s is not None:
                out[f"{name}[{k}]"] = s[k]
    return out


def with_step(bucket, step, grads):
    return dataclasses.replace(bucket, step=step, grads=grads)


@pytest.mark.parametrize("simd", SIMD_LEVELS)
@pytest.mark.parametrize("n_threads", THREADS, ids=lambda t: f"t{t}")
@pytest.mark.parametrize("opts", [LARGE_OPTIONS[1], LARGE_OPTIONS[2]], ids=opts_id)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_multi_tensor_bucket(dtype, opts, n_threads, simd):
    rng = np.random.default_rng([np.dtype(dtype).itemsize, n_threads])
    sizes = [int(s) | 1 for s in rng.integers(1, 4000, 45)] + [1, 3, 0, 5]
    assert sum(sizes) > 2 * PARALLEL_MIN
    initial = adam_bucket(rng, dtype, sizes, opts, step=1)
    grads = [[random_values(rng, n, dtype) for n in sizes] for _ in range(STEPS)]
    results = {}
    for impl in ("numpy", "c"):
        bucket = copy_bucket(initial)
        with simd_level(simd):
            for k in range(STEPS):
                _impl.bucket_stepper(impl)([with_step(bucket, k + 1, grads[k])], n_threads)
        results[impl] = bucket_arrays(bucket)
    for name, expected in results["numpy"].items():
        assert_bitwise_equal(results["c"][name], expected, name)


@pytest.mark.parametrize("n_threads", THREADS, ids=lambda t: f"t{t}")
def test_several_buckets_in_one_call(n_threads):
    """float32 and float64 buckets with different options and step counts, one call."""
    rng = np.random.default_rng(n_threads)
    specs = [(np.float32, LARGE_OPTIONS[0], 3, [3001, 17, 40001]),
             (np.float64, LARGE_OPTIONS[1], 1, [5, 33333, 9]),
             (np.float32, LARGE_OPTIONS[2], 7, [1, 2, 3]),
             (np.float64, LARGE_OPTIONS[3], 2, [])]
    initial = [adam_bucket(rng, d, sizes, o, s) for d, o, s, sizes in specs]
    grads = [[[random_values(rng, n, d) for n in sizes] for d, _, _, sizes in specs]
             for _ in range(STEPS)]
    results = {}
    for impl in ("numpy", "c"):
        buckets = [copy_bucket(b) for b in initial]
        for k in range(STEPS):
            _impl.bucket_stepper(impl)([with_step(b, b.step + k, grads[k][j])
                                        for j, b in enumerate(buckets)], n_threads)
        results[impl] = [bucket_arrays(b) for b in buckets]
    for j, expected in enumerate(results["numpy"]):
        for name, a in expected.items():
            assert_bitwise_equal(results["c"][j][name], a, f"bucket {j} {name}")


# ---- the optimizer: impl="c" against impl="numpy" ------------------------------------

def make_groups(rng, order="C"):
    def p(shape, dtype):
        return np.asarray(random_values(rng, shape, dtype), order=order)

    return [
        {"params": [p((17,), np.float32), p((40, 1000), np.float32), p((3, 7), np.float64)]},
        {"params": [p((33,), np.float64), p((50001,), np.float64)], "lr": 0.05, "amsgrad": True,
         "weight_decay": 0.1},
        {"params": [p((5, 5), np.float32)], "betas": (0.5, 0.9), "eps": 1e-3, "maximize": True,
         "weight_decay": 0.2, "decoupled_weight_decay": True, "eps_mode": "keras"},
        {"params": [p((0,), np.float32), p((1,), np.float64)], "amsgrad": True, "eps": 1e-30,
         "lr": 0.0},
    ]


@pytest.mark.parametrize("n_threads", [1, 2, 3, None], ids=lambda t: f"t{t}")
@pytest.mark.parametrize("cls", [adamcore.Adam, adamcore.AdamW], ids=lambda c: c.__name__)
def test_optimizer_c_equals_numpy(cls, n_threads):
    rng = np.random.default_rng(3)
    groups = make_groups(rng)
    shapes = [p.shape for g in groups for p in g["params"]]
    dtypes = [p.dtype for g in groups for p in g["params"]]
    opts = {}
    for impl in ("c", "numpy"):
        mine = [{**g, "params": [p.copy() for p in g["params"]]} for g in groups]
        opts[impl] = cls(mine, lr=0.01, n_threads=n_threads, impl=impl)
    grads_rng = np.random.default_rng(4)
    for step in range(STEPS):
        grads = [random_values(grads_rng, s, d) for s, d in zip(shapes, dtypes)]
        if step % 3 == 1:
            grads[2] = None  # a skipped param falls behind: a different step count
        for impl in ("c", "numpy"):
            opts[impl].step(grads)
    assert opts["c"].state[2]["step"] == STEPS - 3
    assert opts["c"].state[0]["step"] == STEPS
    assert_optimizers_equal(opts["c"], opts["numpy"])


# ---- odd values: signed zeros, subnormals, huge, inf and NaN -------------------------

@pytest.mark.parametrize("simd", SIMD_LEVELS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_special_values(dtype, simd):
    """Non-finite and extreme grads and states: C and the reference agree bitwise
    (any NaN matching any NaN)."""
    info = np.finfo(dtype)
    specials = np.array([0.0, -0.0, info.tiny, -info.tiny, info.smallest_subnormal,
                         -info.smallest_subnormal, info.max, -info.max, np.inf, -np.inf,
                         np.nan, 1.0, -1.0, info.eps, 1e-30, -1e30], dtype)
    n = specials.size
    cases = []
    for i in range(n):
        for k, name in enumerate(("param", "grad", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")):
            vals = np.roll(specials, i + 3 * k)
            if name in ("exp_avg_sq", "max_exp_avg_sq"):
                vals = np.abs(vals)  # second moments are never negative...
                vals[vals == 0] = 0.0  # ...and their zeros are +0.0
            cases.append((name, vals))
    arrays = {name: [] for name in ("param", "grad", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")}
    for name, vals in cases:
        arrays[name].append(vals)
    data = {k: np.concatenate(v) for k, v in arrays.items()}
    grad = data.pop("grad")
    for opts in OPTIONS:
        results = {}
        for impl in ("numpy", "c"):
            st = {k: a.copy() for k, a in data.items() if opts["amsgrad"] or k != "max_exp_avg_sq"}
            fn = ref_adam_step if impl == "numpy" else c_step(2)
            with np.errstate(all="ignore"), simd_level(simd):
                run_functional(fn, st, [grad, grad[::-1].copy()], opts)
            results[impl] = st
        for k in results["numpy"]:
            assert_same_values(results["c"][k], results["numpy"][k], f"{k} {opts_id(opts)}")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_negative_zero_in_max_exp_avg_sq(dtype):
    """A state array may hold -0.0 (e.g. loaded from elsewhere): the AMSGrad maximum
    of vmax=-0.0 and v=+0.0 must give the same bits in C and in the reference."""
    n = 40
    results = {}
    for impl in ("numpy", "c"):
        p = np.ones(n, dtype)
        g = np.zeros(n, dtype)
        m, v = np.zeros(n, dtype), np.zeros(n, dtype)
        vmax = np.full(n, -0.0, dtype)
        fn = ref_adam_step if impl == "numpy" else c_step(1)
        fn(p, g, m, v, max_exp_avg_sq=vmax, step=1, **HYPER)
        results[impl] = dict(param=p, exp_avg=m, exp_avg_sq=v, max_exp_avg_sq=vmax)
    for k in results["numpy"]:
        assert_bitwise_equal(results["c"][k], results["numpy"][k], k)
