"""adamcore.Adam / AdamW against torch.optim.Adam / AdamW after 100 steps.

PyTorch orders some operations differently (lerp for m, a division by
sqrt(bc2) instead of a multiplication), so this is a tolerance comparison:
float32 rtol 1e-5 / atol 1e-6, float64 rtol 1e-12 / atol 1e-14, on params
and on every state array.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import adamcore  # noqa: E402
from helpers import DTYPES, IMPL_PARAMS, PARALLEL_MIN, requires_kernel  # noqa: E402

STEPS = 100
TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-14)}
SHAPES = [(17,), (4, 33), (1000,)]

# (id, adamcore class, torch class, options shared by both)
CONFIGS = [
    ("adam-defaults", "Adam", {}),
    ("adam-lr0.1", "Adam", dict(lr=0.1)),
    ("adam-betas0.5-0.9", "Adam", dict(betas=(0.5, 0.9))),
    ("adam-beta1-0", "Adam", dict(lr=0.01, betas=(0.0, 0.99))),
    ("adam-eps1e-3", "Adam", dict(eps=1e-3)),
    ("adam-wd0.1", "Adam", dict(weight_decay=0.1)),
    ("adam-ams", "Adam", dict(amsgrad=True, lr=0.01)),
    ("adam-max", "Adam", dict(maximize=True)),
    ("adam-ams-max-wd0.1", "Adam", dict(amsgrad=True, maximize=True, weight_decay=0.1, lr=0.01)),
    ("adam-decoupled-wd0.1", "Adam", dict(decoupled_weight_decay=True, weight_decay=0.1)),
    ("adamw-defaults", "AdamW", {}),
    ("adamw-wd0.1-ams-lr0.01", "AdamW", dict(weight_decay=0.1, amsgrad=True, lr=0.01)),
    ("adamw-max-eps1e-6", "AdamW", dict(maximize=True, eps=1e-6, betas=(0.8, 0.95))),
]
TORCH_MODES = {"default": {}, "foreach-false": dict(foreach=False),
               "foreach-true": dict(foreach=True), "fused": dict(fused=True)}
TORCH_DTYPE = {np.float32: torch.float32, np.float64: torch.float64}


def make_torch(cls_name, params, options, mode, dtype):
    """The torch optimizer, or a skip when this build can't run ``mode`` for ``dtype``."""
    cls = getattr(torch.optim, cls_name)
    try:
        return cls(params, **options, **TORCH_MODES[mode])
    except (RuntimeError, ValueError, TypeError) as exc:  # fused/foreach not supported here
        pytest.skip(f"torch {torch.__version__} CPU has no {mode} {cls_name} for {dtype}: {exc}")


def assert_close_to_torch(opt, topt, params, tparams, dtype):
    tol = TOL[dtype]
    for i, (p, tp) in enumerate(zip(params, tparams)):
        np.testing.assert_allclose(p, tp.detach().numpy(), err_msg=f"params[{i}]", **tol)
        st, tst = opt.state[i], topt.state[tp]
        assert st["step"] == int(tst["step"])
        keys = sorted(k for k in tst if k != "step")
        assert sorted(k for k in st if k != "step") == keys
        for k in keys:
            np.testing.assert_allclose(st[k], tst[k].numpy(), err_msg=f"state[{i}][{k!r}]", **tol)


def run_both(opt, topt, params, tparams, rng, dtype, steps=STEPS):
    for _ in range(steps):
        grads = [rng.standard_normal(p.shape).astype(dtype) for p in params]
        for tp, g in zip(tparams, grads):
            tp.grad = torch.from_numpy(g.copy())
        topt.step()
        opt.step(grads)


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("mode", list(TORCH_MODES))
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c[0])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_matches_torch(dtype, config, mode, impl):
    _, cls_name, options = config
    rng = np.random.default_rng(sum(map(ord, config[0])))
    params = [rng.standard_normal(s).astype(dtype) for s in SHAPES]
    tparams = [torch.from_numpy(p.copy()) for p in params]
    topt = make_torch(cls_name, tparams, options, mode, dtype)
    opt = getattr(adamcore, cls_name)(params, **options, impl=impl)
    run_both(opt, topt, params, tparams, rng, dtype)
    assert_close_to_torch(opt, topt, params, tparams, dtype)


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_param_groups_match_torch(dtype, impl):
    rng = np.random.default_rng(11)
    shapes = [[(5,), (2, 3)], [(40,)], [(7, 7), (1,)]]
    group_opts = [dict(lr=0.1), dict(lr=1e-4, amsgrad=True, weight_decay=0.1),
                  dict(betas=(0.5, 0.9), maximize=True, eps=1e-4)]
    params = [[rng.standard_normal(s).astype(dtype) for s in group] for group in shapes]
    tparams = [[torch.from_numpy(p.copy()) for p in group] for group in params]
    opt = adamcore.Adam([{"params": ps, **o} for ps, o in zip(params, group_opts)],
                        lr=0.01, impl=impl)
    topt = torch.optim.Adam([{"params": ps, **o} for ps, o in zip(tparams, group_opts)], lr=0.01)
    flat, tflat = sum(params, []), sum(tparams, [])
    initial = [p.copy() for p in flat]
    run_both(opt, topt, flat, tflat, rng, dtype)
    assert_close_to_torch(opt, topt, flat, tflat, dtype)
    # The per-group lr took effect: lr 0.1 moves far more than lr 1e-4.
    moved = [np.abs(p - p0).max() for p, p0 in zip(flat, initial)]
    assert min(moved[:2]) > 100 * moved[2]


@requires_kernel
@pytest.mark.parametrize("n_threads", [1, 2], ids=lambda t: f"t{t}")
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_large_tensor_matches_torch(dtype, n_threads):
    """Above the parallel threshold, split over threads."""
    rng = np.random.default_rng(5)
    params = [rng.standard_normal(3 * PARALLEL_MIN + 7).astype(dtype)]
    tparams = [torch.from_numpy(params[0].copy())]
    topt = torch.optim.AdamW(tparams, lr=0.01, amsgrad=True)
    opt = adamcore.AdamW(params, lr=0.01, amsgrad=True, n_threads=n_threads, impl="c")
    run_both(opt, topt, params, tparams, rng, dtype, steps=20)
    assert_close_to_torch(opt, topt, params, tparams, dtype)
