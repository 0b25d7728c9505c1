"""Shared fixtures and helpers for the adamcore tests.

Helpers are plain functions importable with ``from conftest import ...`` (the
tests directory has no ``__init__.py``, so pytest puts it on ``sys.path``).
"""

import contextlib

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


# ---- fixtures -------------------------------------------------------------

@pytest.fixture
def rng(request):
    """A generator seeded from the test id, so every test sees its own fixed data."""
    seed = np.frombuffer(request.node.nodeid.encode(), np.uint8).astype(np.uint64).sum()
    return np.random.default_rng(int(seed))


@contextlib.contextmanager
def simd_level(name):
    """Use SIMD level ``name`` inside the block; restore the previous one after."""
    previous = KERNEL.set_simd_level(name)
    try:
        assert KERNEL.simd_level() == name
        yield name
    finally:
        KERNEL.set_simd_level(previous)


@pytest.fixture
def set_simd():
    """``set_simd(name)`` switches the kernel's SIMD level for this test only."""
    if KERNEL is None:
        pytest.skip("the compiled extension adamcore._kernel is not built")
    original = KERNEL.simd_level()
    yield KERNEL.set_simd_level
    KERNEL.set_simd_level(original)


@pytest.fixture(autouse=True)
def _simd_level_unchanged():
    """No test may leak a SIMD level change into the next one."""
    before = KERNEL.simd_level() if KERNEL is not None else None
    yield
    after = KERNEL.simd_level() if KERNEL is not None else None
    assert after == before, f"a test left the SIMD level at {after!r} (was {before!r})"


@pytest.fixture(autouse=True)
def _no_impl_env(monkeypatch):
    """Tests choose the implementation explicitly; a stray ADAMCORE_IMPL must not."""
    monkeypatch.delenv("ADAMCORE_IMPL", raising=False)


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
