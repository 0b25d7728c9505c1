"""Gradient norms and clipping: the kernel against its NumPy mirror (bitwise),
thread counts and SIMD levels (bitwise), torch.nn.utils (tolerance), bad input."""

import math

import numpy as np
import pytest

import adamcore
from adamcore import clip, reference
from helpers import DTYPES, IMPL_PARAMS, KERNEL, SIMD_LEVELS, requires_kernel, simd_level

SIZE_SETS = {"empty": [0], "one": [1], "tail": [17], "block-1": [2047], "block": [2048],
             "block+1": [2049], "mixed": [5000, 3, 70000], "many": [1024] * 40,
             "large": [300000]}


def grads_of(sizes, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(s) * 10 ** rng.uniform(-3, 3, s)).astype(dtype) for s in sizes]


def bits(x):
    return np.float64(x).tobytes()


@requires_kernel
@pytest.mark.parametrize("simd", SIMD_LEVELS)
@pytest.mark.parametrize("sizes", SIZE_SETS, ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_kernel_equals_reference_bitwise_for_every_thread_count(dtype, sizes, simd):
    gs = grads_of(SIZE_SETS[sizes], dtype)
    expected = reference.grad_sumsq(gs)
    with simd_level(simd):
        for t in (1, 2, 3, 8):
            got = KERNEL.grad_sumsq(gs, t)
            assert bits(got[0]) == bits(expected[0]) and got[1] == expected[1] is False


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_nonfinite_is_reported(dtype, bad, impl):
    gs = grads_of([5000, 7], dtype)
    gs[0][4321] = bad
    total, nonfinite = clip.grad_sumsq(gs, impl=impl)
    assert nonfinite and not math.isfinite(total)


@pytest.mark.parametrize("impl", IMPL_PARAMS)
def test_huge_finite_float64_is_not_called_nonfinite(impl):
    gs = [np.full(100, 1e200)]
    total, nonfinite = clip.grad_sumsq(gs, impl=impl)
    assert total == math.inf and not nonfinite


@pytest.mark.parametrize("impl", IMPL_PARAMS)
def test_mixed_dtypes_sum_float32_then_float64(impl):
    a, b = grads_of([3000], np.float32), grads_of([500], np.float64, seed=1)
    total, _ = clip.grad_sumsq([b[0], a[0]], impl=impl)
    assert bits(total) == bits(reference.grad_sumsq(a)[0] + reference.grad_sumsq(b)[0])


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("norm_type", [2.0, math.inf, 1.0, 3.0], ids=str)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_clip_grad_norm_matches_torch(dtype, norm_type, impl):
    torch = pytest.importorskip("torch")
    gs = [g * 3 for g in grads_of([10, 4097, 300], dtype)]
    ours = [g.copy() for g in gs]
    params = [torch.zeros(g.shape, dtype=torch.from_numpy(g).dtype, requires_grad=True)
              for g in gs]
    for p, g in zip(params, gs):
        p.grad = torch.from_numpy(g.copy())
    total = adamcore.clip_grad_norm(ours, 1.0, norm_type, impl=impl)
    expected = float(torch.nn.utils.clip_grad_norm_(params, 1.0, norm_type))
    # torch sums float32 norms in float32; ours are summed in double
    tol = dict(rtol=1e-5, atol=0) if dtype == np.float32 else dict(rtol=1e-12, atol=0)
    np.testing.assert_allclose(total, expected, **tol)
    for g, p in zip(ours, params):
        np.testing.assert_allclose(g, p.grad.numpy(), rtol=tol["rtol"] * 10, atol=1e-12)


@pytest.mark.parametrize("impl", IMPL_PARAMS)
def test_clip_grad_norm_below_max_changes_nothing_and_above_scales_to_max(impl):
    gs = grads_of([1000, 33], np.float64)
    norm = clip.grad_norm(gs, impl=impl)
    small = [g.copy() for g in gs]
    assert clip.clip_grad_norm(small, norm * 2, impl=impl) == norm
    assert all(np.array_equal(a, b) for a, b in zip(small, gs))
    clipped = [g.copy() for g in gs]
    clip.clip_grad_norm(clipped, norm / 4, impl=impl)
    assert clip.grad_norm(clipped, impl=impl) == pytest.approx(norm / 4, rel=1e-6)


@pytest.mark.parametrize("impl", IMPL_PARAMS)
def test_error_if_nonfinite_raises_with_nothing_changed(impl):
    gs = grads_of([100, 100], np.float32)
    gs[1][5] = np.nan
    before = [g.copy() for g in gs]
    with pytest.raises(RuntimeError, match="non-finite"):
        adamcore.clip_grad_norm(gs, 1.0, error_if_nonfinite=True, impl=impl)
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(gs, before))


@pytest.mark.parametrize("impl", IMPL_PARAMS)
def test_a_single_array_is_one_grad(impl):
    g = grads_of([100], np.float32)[0]
    assert clip.grad_norm(g, impl=impl) == clip.grad_norm([g], impl=impl)


def test_clip_grad_value_matches_torch():
    torch = pytest.importorskip("torch")
    gs = grads_of([500], np.float32)
    ours = [gs[0].copy()]
    t = torch.from_numpy(gs[0].copy())
    p = torch.zeros_like(t, requires_grad=True)
    p.grad = t
    adamcore.clip_grad_value(ours, 0.5)
    torch.nn.utils.clip_grad_value_([p], 0.5)
    np.testing.assert_array_equal(ours[0], p.grad.numpy())


BAD = [
    ("not-iterable", lambda: 5, TypeError, "grads must be an array or a list of arrays"),
    ("not-an-array", lambda: [[1.0, 2.0]], TypeError, r"grads\[0\] must be a numpy.ndarray"),
    ("int-dtype", lambda: [np.zeros(3, np.int32)], TypeError, "float32 or float64"),
    ("strided", lambda: [np.zeros(10)[::2]], ValueError, "contiguous"),
]


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("case", BAD, ids=lambda c: c[0])
def test_bad_grads_are_refused(case, impl):
    _, build, exc, match = case
    with pytest.raises(exc, match=match):
        clip.grad_norm(build(), impl=impl)


@pytest.mark.parametrize("args, exc, match", [
    (dict(max_norm=-1.0), ValueError, "max_norm must be >= 0"),
    (dict(max_norm=1.0, norm_type=0.0), ValueError, "norm_type must be > 0"),
    (dict(max_norm="1"), TypeError, "max_norm must be a real number"),
])
def test_bad_clip_arguments(args, exc, match):
    gs = grads_of([10], np.float32)
    before = gs[0].copy()
    with pytest.raises(exc, match=match):
        adamcore.clip_grad_norm(gs, **args)
    assert np.array_equal(gs[0], before)


def test_read_only_grads_are_refused_by_clipping():
    g = np.ones(10, np.float32)
    g.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        adamcore.clip_grad_norm([g], 0.1)
    with pytest.raises(ValueError, match="read-only"):
        adamcore.clip_grad_value([g], 0.1)
