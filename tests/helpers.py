"""Helpers and constants shared by the adamcore tests (no fixtures: those are
in conftest.py).

- KERNEL, requires_kernel, IMPL_PARAMS, SIMD_LEVELS, PARALLEL_MIN, DTYPES,
  STATE_KEYS: what this build has, and the usual parametrizations;
- simd_level: a context manager that switches the kernel's SIMD level;
- bits, assert_bitwise_equal, assert_same_values, snapshot, assert_unchanged,
  optimizer_snapshot, assert_optimizer_snapshot_equal, assert_optimizers_equal:
  bitwise comparison of arrays and of whole optimizers;
- aligned_empty, random_values: test data.

Tests import them with ``from helpers import ...``: the tests directory has no
``__init__.py``, so pytest puts it on ``sys.path`` (this file travels with a
copy of tests/, as in tools/check_wheel.sh and cibuildwheel).
"""

import contextlib
import threading

import numpy as np
import pytest

from adamcore import _impl

KERNEL = _impl.kernel()

requires_kernel = pytest.mark.skipif(
    KERNEL is None, reason="the compiled extension adamcore._kernel is not built"
)

#: impl parametrization: "c" skips cleanly where the extension is not built.
IMPL_PARAMS = [pytest.param("c", marks=requires_kernel), "numpy"]

#: SIMD levels this build and CPU run ("baseline" only when there is no kernel,
#: so parametrizations still collect; such tests carry ``requires_kernel``).
SIMD_LEVELS = KERNEL.simd_levels() if KERNEL is not None else ["baseline"]
PARALLEL_MIN = KERNEL.PARALLEL_MIN if KERNEL is not None else 32768

DTYPES = (np.float32, np.float64)
STATE_KEYS = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
_UINT = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64, 16: np.uint64}


# ---- SIMD level -------------------------------------------------------------

@contextlib.contextmanager
def simd_level(name):
    """Use SIMD level ``name`` inside the block; restore the previous one after."""
    previous = KERNEL.set_simd_level(name)
    try:
        assert KERNEL.simd_level() == name
        yield name
    finally:
        KERNEL.set_simd_level(previous)


# ---- bitwise comparison -----------------------------------------------------

def bits(a):
    """The raw bits of ``a`` as unsigned integers of the same shape (a copy)."""
    a = np.asarray(a)
    if a.dtype.hasobject:  # object arrays: the identities of the elements
        return np.array([id(x) for x in a.ravel(order="K")], np.uint64)
    return np.ascontiguousarray(a).view(_UINT[a.dtype.itemsize]).copy()


def assert_bitwise_equal(actual, expected, name="array"):
    """Same dtype, shape and bit pattern (so -0.0 != 0.0 and NaN payloads count)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == expected.dtype, f"{name}: dtype {actual.dtype} != {expected.dtype}"
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    ab, eb = bits(actual), bits(expected)
    if not np.array_equal(ab, eb):
        bad = np.flatnonzero((ab != eb).ravel())
        k = bad[0]
        raise AssertionError(
            f"{name}: {bad.size} of {actual.size} elements differ bitwise; first at flat "
            f"index {k}: got {actual.ravel()[k]!r} expected {expected.ravel()[k]!r}"
        )


def assert_same_values(actual, expected, name="array"):
    """Bitwise equal except that any NaN matches any NaN (payloads may differ)."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.dtype == expected.dtype, f"{name}: dtype {actual.dtype} != {expected.dtype}"
    assert actual.shape == expected.shape, f"{name}: shape {actual.shape} != {expected.shape}"
    an, en = np.isnan(actual), np.isnan(expected)
    assert np.array_equal(an, en), f"{name}: NaNs at different places"
    assert_bitwise_equal(np.where(an, 0, actual).astype(actual.dtype),
                         np.where(en, 0, expected).astype(expected.dtype), name)


def snapshot(arrays):
    """Bitwise copies of a dict or list of arrays, to check later that nothing changed."""
    if isinstance(arrays, dict):
        return {k: bits(a) for k, a in arrays.items() if isinstance(a, np.ndarray)}
    return [bits(a) if isinstance(a, np.ndarray) else None for a in arrays]


def assert_unchanged(arrays, snap, what="input"):
    """Every array still has the bits ``snapshot`` recorded."""
    items = arrays.items() if isinstance(arrays, dict) else enumerate(arrays)
    for k, a in items:
        if isinstance(a, np.ndarray):
            assert np.array_equal(bits(a), snap[k]), f"{what} {k!r} was modified"


def optimizer_snapshot(opt):
    """(param bits, state: {i: {"step": int, key: bits}}) of an optimizer."""
    params = [bits(p) for g in opt.param_groups for p in g["params"]]
    state = {i: {k: (bits(v) if isinstance(v, np.ndarray) else v) for k, v in st.items()}
             for i, st in opt.state.items()}
    return params, state


def assert_optimizer_snapshot_equal(snap_a, snap_b, what="optimizer"):
    params_a, state_a = snap_a
    params_b, state_b = snap_b
    assert len(params_a) == len(params_b)
    for i, (a, b) in enumerate(zip(params_a, params_b)):
        assert np.array_equal(a, b), f"{what}: params[{i}] differs"
    assert sorted(state_a) == sorted(state_b), f"{what}: state keys {sorted(state_a)} != {sorted(state_b)}"
    for i in state_a:
        assert sorted(state_a[i]) == sorted(state_b[i]), f"{what}: state[{i}] keys differ"
        for k in state_a[i]:
            a, b = state_a[i][k], state_b[i][k]
            if isinstance(a, np.ndarray):
                assert np.array_equal(a, b), f"{what}: state[{i}][{k!r}] differs"
            else:
                assert a == b, f"{what}: state[{i}][{k!r}] {a!r} != {b!r}"


def assert_optimizers_equal(opt_a, opt_b):
    """Bitwise equal params and every state array, and equal step counts."""
    assert_optimizer_snapshot_equal(optimizer_snapshot(opt_a), optimizer_snapshot(opt_b))


# ---- data -------------------------------------------------------------------

def aligned_empty(n, dtype, offset=0):
    """A 1-D array of ``n`` elements starting ``offset`` elements past a 64-byte line."""
    dtype = np.dtype(dtype)
    raw = np.empty(n * dtype.itemsize + 128 + offset * dtype.itemsize, np.uint8)
    start = (-raw.__array_interface__["data"][0]) % 64 + offset * dtype.itemsize
    out = raw[start:start + n * dtype.itemsize].view(dtype)
    if n:  # (an empty view's address is not meaningful)
        assert out.__array_interface__["data"][0] % 64 == (offset * dtype.itemsize) % 64
    return out


def random_values(rng, shape, dtype, spread=True):
    """Normal values with, when ``spread``, magnitudes over many decades and a
    few exact zeros, so every branch of the arithmetic sees varied operands."""
    x = rng.standard_normal(shape)
    if spread and x.size:
        x = x * 10.0 ** rng.uniform(-4, 2, shape)
        x.ravel()[3::7] = 0.0
    return x.astype(dtype)


# ---- the kinds' registry ------------------------------------------------------

def _optimizer_classes():
    """kind name -> its optimizer class, found by the KIND each class names
    (AdamW shares Adam's kind; Adam is the one named here)."""
    import adamcore  # noqa: PLC0415 (helpers import before any test module)
    out = {}
    for name in adamcore.__all__:
        cls = getattr(adamcore, name)
        kind = getattr(cls, "KIND", None) if isinstance(cls, type) else None
        if kind is not None and kind.name in adamcore.kinds.KINDS:  # SparseAdam: test_rows.py
            out.setdefault(kind.name, cls)
    return out


#: kind name -> optimizer class, for every kind of adamcore.kinds.KINDS.
OPTIMIZERS = _optimizer_classes()

#: kind name -> options (torch's names) under which a step uses every state slot.
EVERY_SLOT_OPTIONS = {
    "adam": dict(lr=1e-2, amsgrad=True, weight_decay=0.1),
    "sgd": dict(lr=1e-2, momentum=0.9, weight_decay=0.1),
    "rmsprop": dict(lr=1e-3, momentum=0.9, centered=True),
    "adagrad": dict(lr=1e-2, initial_accumulator_value=0.1),
    "adabelief": dict(lr=1e-2, amsgrad=True),
}
assert set(EVERY_SLOT_OPTIONS) == set(OPTIMIZERS), "a new kind needs EVERY_SLOT_OPTIONS here"


# ---- row gradients (adamcore.rows) ------------------------------------------------

def row_optimizer(semantics, params, **options):
    """An optimizer whose RowGrads step with ``semantics`` (adamcore.rows.SEMANTICS)."""
    import adamcore  # noqa: PLC0415 (helpers import before any test module)
    if semantics == "sparse_adam":
        return adamcore.SparseAdam(params, **options)
    return adamcore.Adam(params, lazy=semantics == "lazy", **options)


#: per semantics, option sets that reach every branch of its update
ROW_OPTIONS = {
    "sparse_adam": [dict(lr=1e-2), dict(lr=3e-3, betas=(0.5, 0.9), eps=1e-3, maximize=True)],
    "lazy": [dict(lr=1e-2), dict(lr=1e-2, amsgrad=True, weight_decay=0.1),
             dict(lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True, maximize=True),
             dict(lr=1e-2, eps_mode="keras")],
    "dense": [dict(lr=1e-2), dict(lr=1e-2, amsgrad=True, weight_decay=0.1),
              dict(lr=1e-2, weight_decay=0.1, decoupled_weight_decay=True, maximize=True),
              dict(lr=1e-2, eps_mode="keras")],
}


def make_hyper(kind, **options):
    """``kind``'s hyper (adamcore.kinds) with ``options``, and neutral values
    (0, False, the first choice) for the fields not given."""
    from adamcore import _validate, kinds  # noqa: PLC0415
    k = kinds.KINDS[kind]
    values = {}
    for name, rule in k.fields.items():
        if isinstance(rule, _validate.Flag):
            values[name] = False
        elif isinstance(rule, _validate.Choice):
            values[name] = rule.values[0]
        else:
            values[name] = 0.0
    unknown = set(options) - set(values)
    assert not unknown, f"{kind} has no fields {sorted(unknown)}"
    return k.hyper_type(**{**values, **options})


def make_bucket(kind, params, grads, states, *, step=1, grad_scale=1.0, first=False,
                indices=None, **options):
    """A Bucket of ``kind`` (states: per slot a list or None, padded to the
    kernel's slots) with the hyper of ``options``."""
    from adamcore import kinds, plan  # noqa: PLC0415
    states = tuple(states) + (None,) * (plan.SLOTS - len(states))
    return plan.Bucket(kinds.KINDS[kind], make_hyper(kind, **options), step, params, grads,
                       states, indices, grad_scale, first)


def ref_adam_step(*args, **kwargs):
    """functional.adam_step on the NumPy reference."""
    from adamcore import functional  # noqa: PLC0415
    return functional.adam_step(*args, impl="numpy", **kwargs)


def run_in_threads(n, target, timeout=120):
    """``target(k)`` for k in range(n), each on its own thread, all released
    at once by a barrier; an exception in any fails the test, and so does a
    thread still running after ``timeout`` seconds (a hang)."""
    errors = []
    barrier = threading.Barrier(n)

    def work(k):
        try:
            barrier.wait()
            target(k)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=timeout)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    assert not errors, errors
