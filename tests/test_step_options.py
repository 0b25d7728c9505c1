"""Optimizer options around the step: fused gradient clipping (max_grad_norm)
and skipping non-finite steps (skip_nonfinite)."""

import numpy as np
import pytest

import adamcore
from adamcore import clip
from helpers import DTYPES, IMPL_PARAMS, assert_optimizers_equal, optimizer_snapshot, \
    assert_optimizer_snapshot_equal

SHAPES = [(300,), (17, 3), (5000,)]


def make(dtype, seed=0):
    rng = np.random.default_rng(seed)
    params = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    grads = [[(5 * rng.standard_normal(s)).astype(dtype) for s in SHAPES] for _ in range(8)]
    return params, grads


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_fused_clipping_equals_clip_then_step_bitwise(dtype, impl):
    params, grads = make(dtype)
    fused = adamcore.AdamW([p.copy() for p in params], lr=1e-2, max_grad_norm=1.0, impl=impl)
    plain = adamcore.AdamW([p.copy() for p in params], lr=1e-2, impl=impl)
    for gs in grads:
        before = [g.copy() for g in gs]
        assert fused.step(gs) is True
        assert all(np.array_equal(a, b) for a, b in zip(gs, before)), "grads were written"
        clipped = [g.copy() for g in gs]
        norm = clip.clip_grad_norm(clipped, 1.0, impl=impl)
        assert fused.last_grad_norm == norm
        plain.step(clipped)
    assert_optimizers_equal(fused, plain)


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_fused_clipping_matches_torch(dtype, impl):
    torch = pytest.importorskip("torch")
    params, grads = make(dtype, seed=3)
    tparams = [torch.from_numpy(p.copy()).requires_grad_() for p in params]
    topt = torch.optim.Adam(tparams, lr=1e-2)
    opt = adamcore.Adam(params, lr=1e-2, max_grad_norm=0.5, impl=impl)
    for gs in grads * 5:
        opt.step(gs)
        for tp, g in zip(tparams, gs):
            tp.grad = torch.from_numpy(g.copy())
        torch.nn.utils.clip_grad_norm_(tparams, 0.5)
        topt.step()
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-14)
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p, tp.detach().numpy(), **tol)


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("clipping", [None, 1.0], ids=["no-clip", "clip"])
@pytest.mark.parametrize("bad", [np.nan, np.inf], ids=["nan", "inf"])
def test_skip_nonfinite_leaves_everything_unchanged(bad, clipping, impl):
    params, grads = make(np.float32)
    opt = adamcore.Adam(params, amsgrad=True, skip_nonfinite=True, max_grad_norm=clipping,
                        impl=impl)
    ref = adamcore.Adam([p.copy() for p in params], amsgrad=True, max_grad_norm=clipping,
                        impl=impl)
    for gs in grads[:3]:
        assert opt.step(gs) and ref.step(gs)
    snap = optimizer_snapshot(opt)
    poisoned = [g.copy() for g in grads[3]]
    poisoned[2][4321] = bad
    assert opt.step(poisoned) is False
    assert opt.skipped_steps == 1
    assert_optimizer_snapshot_equal(optimizer_snapshot(opt), snap)
    for gs in grads[4:]:  # later finite steps continue as if the bad one never came
        assert opt.step(gs) and ref.step(gs)
    assert_optimizers_equal(opt, ref)


@pytest.mark.parametrize("impl", IMPL_PARAMS)
def test_one_norm_pass_per_step_with_clipping_and_skip(impl, monkeypatch):
    calls = []
    real = clip.grad_sumsq
    monkeypatch.setattr(clip, "grad_sumsq", lambda *a, **k: calls.append(1) or real(*a, **k))
    params, grads = make(np.float64)
    opt = adamcore.Adam(params, max_grad_norm=1.0, skip_nonfinite=True, impl=impl)
    opt.step(grads[0])
    assert len(calls) == 1


@pytest.mark.parametrize("impl", IMPL_PARAMS)
def test_by_default_nonfinite_grads_propagate_like_torch(impl):
    params, grads = make(np.float32)
    opt = adamcore.Adam(params, impl=impl)
    grads[0][0][7] = np.nan
    assert opt.step(grads[0]) is True
    assert np.isnan(params[0][7]) and opt.skipped_steps == 0


@pytest.mark.parametrize("impl", IMPL_PARAMS)
def test_none_grads_are_left_out_of_the_norm(impl):
    params, grads = make(np.float64)
    opt = adamcore.Adam(params, max_grad_norm=1.0, impl=impl)
    gs = [grads[0][0], None, grads[0][2]]
    opt.step(gs)
    assert opt.last_grad_norm == clip.grad_norm([gs[0], gs[2]], impl=impl)
    assert 1 not in opt.state


def test_bad_grad_is_named_by_its_param_index():
    params, grads = make(np.float32)
    opt = adamcore.Adam(params, max_grad_norm=1.0)
    with pytest.raises(TypeError, match=r"grads\[2\] must be a numpy.ndarray"):
        opt.step([grads[0][0], None, [1.0, 2.0]])


@pytest.mark.parametrize("impl", IMPL_PARAMS)
def test_grad_refused_by_the_norm_kernel_is_named_by_its_param_index(impl):
    params, grads = make(np.float32)
    opt = adamcore.Adam(params, max_grad_norm=1.0, impl=impl)
    strided = np.zeros(2 * 5000, np.float32)[::2]
    before = [p.copy() for p in params]
    with pytest.raises(ValueError, match=r"grads\[2\] must be C- or F-contiguous"):
        opt.step([grads[0][0], None, strided])
    assert all(np.array_equal(a, b) for a, b in zip(params, before))


@pytest.mark.parametrize("kwargs, exc, match", [
    (dict(max_grad_norm=0.0), ValueError, "max_grad_norm must be None or > 0"),
    (dict(max_grad_norm=-1.0), ValueError, "max_grad_norm must be None or > 0"),
    (dict(max_grad_norm="1"), TypeError, "max_grad_norm must be a real number"),
    (dict(skip_nonfinite=1), TypeError, "skip_nonfinite must be a bool"),
])
def test_bad_options(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        adamcore.Adam([np.zeros(3, np.float32)], **kwargs)
