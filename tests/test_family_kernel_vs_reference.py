"""The optimizer family's C kernel against the pure-NumPy reference, bit for bit.

csrc/family_body.h and adamcore.reference's family functions perform the same IEEE
operations in the same order, so after several steps params AND every state
array must have the same bits (NaN matching NaN: ``assert_same_values``),
whatever the kind, options, dtype, size, thread count, SIMD level, alignment,
memory layout or bucket split.

The grid, kept to well under a minute: every option combination of every kind
at every small size (0..33, 1023, 4097: one multi-tensor bucket per call) at
every SIMD level; every size one tensor at a time for one combination per
kind; above the parallel threshold at 1, 2 and 3 threads for a few
combinations per kind; and the optimizer classes, impl="c" against
impl="numpy".
"""

import itertools

import numpy as np
import pytest

import adamcore
from adamcore import _impl, kinds, reference
from helpers import (
    DTYPES,
    PARALLEL_MIN,
    SIMD_LEVELS,
    aligned_empty,
    assert_optimizers_equal,
    assert_same_values,
    make_bucket,
    make_hyper,
    random_values,
    requires_kernel,
    simd_level,
)

pytestmark = requires_kernel

KERNEL = _impl.kernel()
STEPS = 5
SMALL_SIZES = list(range(34)) + [1023, 4097]
LARGE = 3 * PARALLEL_MIN + 37
THREADS = (1, 2, 3)
LR = dict(sgd=0.01, rmsprop=1e-3, adagrad=0.05, adabelief=1e-3)


# ---- option combinations (a kind's hyper fields, less lr, with first and grad_scale) ------------------

def _sgd():
    for (mom, damp, nest), wd, mx in itertools.product(
            ((0.0, 0.0, False), (0.9, 0.0, False), (0.9, 0.3, False), (0.8, 0.0, True)),
            (0.0, 0.1), (False, True)):
        for first in ((False, True) if mom else (False,)):
            yield dict(kind="sgd", momentum=mom, dampening=damp, nesterov=nest, first=first,
                       weight_decay=wd, maximize=mx)


def _rmsprop():
    for mom, centered, wd, mx in itertools.product((0.0, 0.9), (False, True), (0.0, 0.1),
                                                   (False, True)):
        yield dict(kind="rmsprop", alpha=0.9, eps=1e-8, momentum=mom, centered=centered,
                   weight_decay=wd, maximize=mx)


def _adagrad():
    for lr_decay, wd, mx in itertools.product((0.0, 0.01), (0.0, 0.1), (False, True)):
        yield dict(kind="adagrad", lr_decay=lr_decay, eps=1e-10, weight_decay=wd, maximize=mx)


def _adabelief():
    for ams, (wd, dec), mx in itertools.product(
            (False, True), ((0.0, False), (0.1, False), (0.1, True)), (False, True)):
        yield dict(kind="adabelief", beta1=0.9, beta2=0.999, eps=1e-16, amsgrad=ams,
                   weight_decay=wd, decoupled=dec, maximize=mx)


def _with_scale(options):
    # A grad_scale (clipping) other than 1 on every third combination.
    for k, o in enumerate(options):
        yield {**o, "grad_scale": 0.37 if k % 3 == 1 else 1.0}


OPTIONS = list(_with_scale(itertools.chain(_sgd(), _rmsprop(), _adagrad(), _adabelief())))


def opts_id(o):
    kind = o["kind"]
    parts = [kind]
    if kind in ("sgd", "rmsprop") and o["momentum"]:
        parts.append(f"mom{o['momentum']:g}")
    if kind == "sgd":
        parts += [f"damp{o['dampening']:g}"] if o["dampening"] else []
        parts += ["nest"] if o["nesterov"] else []
        parts += ["first"] if o["first"] else []
    parts += ["centered"] if o.get("centered") else []
    parts += [f"lrd{o['lr_decay']:g}"] if o.get("lr_decay") else []
    parts += ["ams"] if o.get("amsgrad") else []
    if o["weight_decay"]:
        parts.append(f"wd{o['weight_decay']:g}" + ("d" if o.get("decoupled") else ""))
    parts += ["max"] if o["maximize"] else []
    parts += [f"gs{o['grad_scale']:g}"] if o["grad_scale"] != 1.0 else []
    return "-".join(parts)


def pick(kind, **match):
    """The first combination of ``kind`` with the given options."""
    return next(o for o in OPTIONS
                if o["kind"] == kind and all(o.get(k) == v for k, v in match.items()))


# For single-tensor sizes and the large arrays: the most flags of each kind.
FULL = [pick("sgd", momentum=0.8, nesterov=True, first=False, weight_decay=0.1, maximize=True),
        pick("rmsprop", momentum=0.9, centered=True, weight_decay=0.1, maximize=True),
        pick("adagrad", lr_decay=0.01, weight_decay=0.1, maximize=True),
        pick("adabelief", amsgrad=True, weight_decay=0.1, decoupled=True, maximize=True)]
# For the large arrays, also: every kind's plainest and other paths.
LARGE_OPTIONS = FULL + [
    pick("sgd", momentum=0.9, dampening=0.3, first=True, weight_decay=0.0),
    pick("sgd", momentum=0.0, weight_decay=0.1),
    pick("rmsprop", momentum=0.0, centered=False, weight_decay=0.0),
    pick("adabelief", amsgrad=False, weight_decay=0.1, decoupled=False, maximize=False),
]


def bucket(options, step, params, grads, states):
    """The bucket of ``options`` at ``step``: ``first`` (SGD's new momentum
    buffer) holds on step 1 only, as the optimizer passes it."""
    o = dict(options)
    kind, scale, first = o.pop("kind"), o.pop("grad_scale", 1.0), o.pop("first", False)
    return make_bucket(kind, params, grads, states, step=step, grad_scale=scale,
                       first=bool(first) and step == 1, lr=LR[kind], **o)


def required(options):
    o = {k: v for k, v in options.items() if k not in ("kind", "grad_scale", "first")}
    return kinds.KINDS[options["kind"]].required(make_hyper(options["kind"], **o))


# ---- problems ------------------------------------------------------------------

def initial_state(rng, kind, slot, shape, dtype):
    """Start values of one state slot: not zero, so the kernel must read them."""
    def pos(scale):
        return np.square(random_values(rng, shape, dtype, spread=False)) * dtype(scale)

    if kind == "sgd" or (kind == "rmsprop" and slot == 1):  # momentum buffers
        return random_values(rng, shape, dtype) * dtype(0.1)
    if kind == "rmsprop" and slot == 0:  # square_avg
        return pos(1.0)
    if kind == "rmsprop":  # grad_avg, below sqrt(square_avg) (set in make_problem)
        return rng.uniform(-0.9, 0.9, shape).astype(dtype)
    if kind == "adagrad":
        return pos(1.0)
    if slot == 0:  # exp_avg
        return random_values(rng, shape, dtype) * dtype(0.01)
    return pos(1e-3)  # exp_avg_var (and its max, set below)


def make_problem(rng, sizes, dtype, options, steps=STEPS, shape=None):
    """Start values of each tensor: {"param", "grads", "states"} (states a 3-list
    of arrays or None); ``shape`` overrides a 1-D size."""
    need = required(options)
    problem = []
    for n in sizes:
        sh = (n,) if shape is None else shape
        states = [initial_state(rng, options["kind"], k, sh, dtype) if need[k] else None
                  for k in range(3)]
        if options["kind"] == "rmsprop" and need[2]:
            # |grad_avg| < sqrt(square_avg), which the update keeps: no sqrt of < 0.
            states[2] = states[2] * np.sqrt(states[0])
        if options["kind"] == "adabelief" and need[2]:
            # Sometimes above, sometimes below s: both branches of the maximum.
            states[2] = states[1] * rng.uniform(0.5, 1.5, sh).astype(dtype)
        problem.append(dict(param=random_values(rng, sh, dtype),
                            grads=[random_values(rng, sh, dtype) for _ in range(steps)],
                            states=states))
    return problem


def placed(values, offset, order="C"):
    """A copy of ``values`` in a fresh buffer starting ``offset`` elements past a
    64-byte line (1-D), or in ``order`` (2-D)."""
    if values.ndim != 1:
        return np.array(values, order=order)
    out = aligned_empty(values.size, values.dtype, offset)
    out[...] = values
    return out


def materialize(problem, layout="same", order="C"):
    """Fresh arrays of ``problem``: param k starts k % 8 elements past a line;
    its state streams at the same offset (``layout="same"``: the kernel's
    aligned path) or at other offsets (``"mixed"``)."""
    tensors = []
    for k, t in enumerate(problem):
        off = k % 8
        soff = [off if layout == "same" else (off + 3 * j + 1) % 8 for j in range(3)]
        tensors.append(dict(
            param=placed(t["param"], off, order),
            grads=[placed(g, (off + 5) % 8, order) for g in t["grads"]],
            states=[None if s is None else placed(s, soff[j], order)
                    for j, s in enumerate(t["states"])]))
    return tensors


def run_steps(step_buckets, tensors, options, n_threads, steps=STEPS, split=None):
    """``steps`` steps of all ``tensors``, as one bucket (or buckets of the
    given sizes ``split``) per step."""
    groups = [tensors] if split is None else [tensors[a:b] for a, b in split]
    for s in range(steps):
        buckets = []
        for ts in groups:
            states = tuple(None if ts and ts[0]["states"][j] is None
                           else [t["states"][j] for t in ts] for j in range(3))
            buckets.append(bucket(options, s + 1, [t["param"] for t in ts],
                                  [t["grads"][s] for t in ts], states))
        step_buckets(buckets, n_threads)
    return tensors


def assert_tensors_equal(got, expected, what=""):
    for k, (a, b) in enumerate(zip(got, expected)):
        assert_same_values(a["param"], b["param"], f"{what}tensor {k}: param")
        for j, (x, y) in enumerate(zip(a["states"], b["states"])):
            assert (x is None) == (y is None)
            if x is not None:
                assert_same_values(x, y, f"{what}tensor {k}: state[{j}]")


def reference_run(problem, options, steps=STEPS, **kw):
    return run_steps(reference.step_buckets, materialize(problem), options, None,
                     steps, **kw)


# ---- the grid ------------------------------------------------------------------------

@pytest.mark.parametrize("options", OPTIONS, ids=opts_id)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_every_option_every_small_size(dtype, options):
    """Sizes 0..33, 1023 and 4097 as one bucket (every peel and vector tail),
    at every SIMD level, with state streams aligned like the param and not."""
    rng = np.random.default_rng([OPTIONS.index(options), np.dtype(dtype).itemsize])
    problem = make_problem(rng, SMALL_SIZES, dtype, options)
    expected = reference_run(problem, options)
    for t in expected:  # finite data stays finite: NaN == NaN would prove little
        assert np.isfinite(t["param"]).all()
        assert all(np.isfinite(a).all() for a in t["states"] if a is not None)
    for li, level in enumerate(SIMD_LEVELS):
        for layout in ("same", "mixed"):
            with simd_level(level):
                got = run_steps(KERNEL.step_buckets, materialize(problem, layout),
                                options, THREADS[li % len(THREADS)])
            assert_tensors_equal(got, expected, f"{level} {layout}: ")


@pytest.mark.parametrize("n", SMALL_SIZES, ids=lambda n: f"n{n}")
@pytest.mark.parametrize("options", FULL, ids=opts_id)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_one_tensor_every_size(dtype, options, n):
    """One tensor per call at every small size, every offset mod 8, every SIMD level."""
    rng = np.random.default_rng([n, FULL.index(options), np.dtype(dtype).itemsize])
    for offset in range(8):
        problem = make_problem(rng, [n], dtype, options)
        # materialize() puts tensor k at offset k % 8: pad with empty tensors.
        problem = [dict(param=np.zeros(0, dtype), grads=[np.zeros(0, dtype)] * STEPS,
                        states=[None if s is None else np.zeros(0, dtype)
                                for s in problem[0]["states"]])] * offset + problem
        expected = reference_run(problem, options, split=[(offset, offset + 1)])
        for level in SIMD_LEVELS:
            with simd_level(level):
                got = run_steps(KERNEL.step_buckets, materialize(problem), options, 1,
                                split=[(offset, offset + 1)])
            assert_tensors_equal(got[offset:], expected[offset:], f"offset {offset} {level}: ")


@pytest.mark.parametrize("n_threads", THREADS, ids=lambda t: f"t{t}")
@pytest.mark.parametrize("options", LARGE_OPTIONS, ids=opts_id)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_above_parallel_min(dtype, options, n_threads):
    """3 * PARALLEL_MIN + 37 elements in three tensors of one call, split over
    threads across tensor boundaries, at every SIMD level."""
    rng = np.random.default_rng([LARGE_OPTIONS.index(options), n_threads,
                                 np.dtype(dtype).itemsize])
    sizes = [PARALLEL_MIN + 5, 17, 2 * PARALLEL_MIN + 15]
    assert sum(sizes) == LARGE
    problem = make_problem(rng, sizes, dtype, options, steps=3)
    expected = reference_run(problem, options, steps=3)
    for level in SIMD_LEVELS:
        for layout in ("same", "mixed"):
            with simd_level(level):
                got = run_steps(KERNEL.step_buckets, materialize(problem, layout),
                                options, n_threads, steps=3)
            assert_tensors_equal(got, expected, f"{level} {layout}: ")


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("options", FULL, ids=opts_id)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_2d_c_and_f_order(dtype, options, order):
    rng = np.random.default_rng([FULL.index(options), ord(order)])
    problem = make_problem(rng, [0, 0, 0], dtype, options, shape=(7, 13))
    problem += make_problem(rng, [0], dtype, options, shape=(300, 120))  # > PARALLEL_MIN
    expected = run_steps(reference.step_buckets, materialize(problem, order=order),
                         options, None)
    for a in expected:
        assert a["param"].flags[f"{order}_CONTIGUOUS"] and a["param"].ndim == 2
    for level in SIMD_LEVELS:
        with simd_level(level):
            got = run_steps(KERNEL.step_buckets, materialize(problem, order=order),
                            options, 2)
        assert_tensors_equal(got, expected, f"{level}: ")


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning")
@pytest.mark.parametrize("options", OPTIONS[::3], ids=opts_id)
def test_nonfinite_values(options):
    """NaN and inf in grads, params and state: the same values (any NaN matches
    any NaN), whatever the SIMD level."""
    dtype = np.float32
    rng = np.random.default_rng(OPTIONS.index(options))
    problem = make_problem(rng, [67, 1], dtype, options)
    t = problem[0]
    specials = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0], dtype)
    t["param"][5:10] = specials
    t["grads"][0][10:15] = specials
    t["grads"][2][20:25] = specials
    for s in t["states"]:
        if s is not None:
            s[30:35] = specials
    expected = reference_run(problem, options)
    assert np.isnan(expected[0]["param"]).any()
    for level in SIMD_LEVELS:
        with simd_level(level):
            got = run_steps(KERNEL.step_buckets, materialize(problem), options, 1)
        assert_tensors_equal(got, expected, f"{level}: ")


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("grad_scale", [0.0, float("nan"), 1e-30, 3.5],
                         ids=["gs0", "gsnan", "gs1e-30", "gs3.5"])
@pytest.mark.parametrize("options", FULL, ids=opts_id)
def test_grad_scales(options, grad_scale):
    rng = np.random.default_rng(FULL.index(options))
    options = {**options, "grad_scale": grad_scale}
    problem = make_problem(rng, [0, 5, 64, 1000], np.float64, options)
    expected = reference_run(problem, options)
    for level in SIMD_LEVELS:
        with simd_level(level):
            got = run_steps(KERNEL.step_buckets, materialize(problem), options, 1)
        assert_tensors_equal(got, expected, f"{level}: ")


def test_many_buckets_in_one_call():
    """Buckets of every kind and both dtypes in one call, each stepping its own
    tensors: the same bits as the reference given the same list."""
    rng = np.random.default_rng(42)
    plan = []  # (options, dtype, tensors)
    for k, options in enumerate(FULL + LARGE_OPTIONS[4:]):
        dtype = DTYPES[k % 2]
        plan.append((options, make_problem(rng, [3, 40, 1 + k], dtype, options)))

    def run(step_buckets, n_threads):
        live = [(o, materialize(p, "mixed")) for o, p in plan]
        for s in range(STEPS):
            buckets = []
            for o, ts in live:
                states = tuple(None if ts[0]["states"][j] is None
                               else [t["states"][j] for t in ts] for j in range(3))
                buckets.append(bucket(o, s + 1, [t["param"] for t in ts],
                                      [t["grads"][s] for t in ts], states))
            step_buckets(buckets, n_threads)
        return live

    expected = run(reference.step_buckets, None)
    for level in SIMD_LEVELS:
        with simd_level(level):
            got = run(KERNEL.step_buckets, 3)
        for (o, g), (_, e) in zip(got, expected):
            assert_tensors_equal(g, e, f"{level} {opts_id(o)}: ")


# ---- the optimizer classes: impl="c" against impl="numpy" -----------------------------

CLASS_OPTIONS = [
    ("SGD", dict(lr=0.01)),
    ("SGD", dict(lr=0.01, momentum=0.9, dampening=0.2, weight_decay=0.1)),
    ("SGD", dict(lr=0.01, momentum=0.9, nesterov=True, maximize=True)),
    ("RMSprop", dict()),
    ("RMSprop", dict(momentum=0.9, centered=True, weight_decay=0.1, maximize=True)),
    ("Adagrad", dict()),
    ("Adagrad", dict(lr_decay=0.01, initial_accumulator_value=0.1, weight_decay=0.1,
                     maximize=True)),
    ("AdaBelief", dict()),
    ("AdaBelief", dict(amsgrad=True, weight_decay=0.1, maximize=True)),
    ("AdaBelief", dict(amsgrad=True, weight_decay=0.1, decoupled_weight_decay=False)),
]


def _class_id(c):
    name, o = c
    return "-".join([name] + [k if v is True else f"{k}{v:g}" for k, v in o.items()])


def _class_problem(seed, n_big):
    """Mixed dtypes and shapes in two groups (the second at 10x the lr),
    F-order and misaligned tensors, and grad lists with some None."""
    rng = np.random.default_rng(seed)
    p = [random_values(rng, (5,), np.float32),
         np.asfortranarray(random_values(rng, (6, 7), np.float64)),
         random_values(rng, (n_big,), np.float32),
         random_values(rng, (1,), np.float64)]
    odd = aligned_empty(33, np.float32, 3)
    odd[...] = random_values(rng, (33,), np.float32)
    p.append(odd)
    grads = []
    for s in range(6):
        gs = [np.asarray(random_values(rng, a.shape, a.dtype), order="K") for a in p]
        gs[1] = np.asfortranarray(gs[1])
        if s in (1, 4):
            gs[s % len(gs)] = None  # a param skips a step: step counts differ
        grads.append(gs)
    return p, grads


@pytest.mark.parametrize("n_threads", [1, 2], ids=lambda t: f"t{t}")
@pytest.mark.parametrize("config", CLASS_OPTIONS, ids=_class_id)
def test_optimizer_c_equals_numpy(config, n_threads):
    name, options = config
    params, grads = _class_problem(CLASS_OPTIONS.index(config), PARALLEL_MIN + 1000)
    opts = {}
    for impl in ("c", "numpy"):
        ps = []
        for a in params:  # same offsets for both impls
            b = aligned_empty(a.size, a.dtype, 3).reshape(a.shape) if a.ndim == 1 else a.copy(
                order="K")
            b[...] = a
            ps.append(b)
        groups = [{"params": ps[:3]}, {"params": ps[3:], "lr": 10 * options.get("lr", 1e-3)}]
        opt = getattr(adamcore, name)(groups, **options, n_threads=n_threads, impl=impl)
        for gs in grads:
            opt.step(gs)
        opts[impl] = opt
    assert_optimizers_equal(opts["c"], opts["numpy"])
    assert len(opts["c"].state) == len(params)


RECTIFY_STEPS = 8  # rho_t first reaches 5 at step 6: both rectified branches run


@requires_kernel
@pytest.mark.parametrize("options", [
    pick("adabelief", amsgrad=False, weight_decay=0.0),
    pick("adabelief", amsgrad=True, weight_decay=0.1, decoupled=True, maximize=True),
    pick("adabelief", amsgrad=False, weight_decay=0.1, decoupled=False),
], ids=opts_id)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_adabelief_rectified(dtype, options):
    """rectify: steps 1-5 without a denominator, then the rectified step, at
    every SIMD level and thread count, sizes with every tail and one above
    the parallel threshold."""
    options = {**options, "rectify": True}
    rng = np.random.default_rng([7, np.dtype(dtype).itemsize])
    problem = make_problem(rng, [0, 1, 17, 33, 1023, PARALLEL_MIN + 5], dtype, options,
                           steps=RECTIFY_STEPS)
    expected = reference_run(problem, options, steps=RECTIFY_STEPS)
    plain = reference_run(problem, {**options, "rectify": False}, steps=RECTIFY_STEPS)
    assert not np.array_equal(expected[-1]["param"], plain[-1]["param"])
    for li, level in enumerate(SIMD_LEVELS):
        for n_threads in THREADS:
            with simd_level(level):
                got = run_steps(KERNEL.step_buckets, materialize(problem), options,
                                n_threads, RECTIFY_STEPS)
            assert_tensors_equal(got, expected, f"{level} t{n_threads}: ")
