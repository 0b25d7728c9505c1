"""Adam's compiled fast path (adamcore._kernel.adam_planned_step) against the
Python one it replaces (Optimizer._step_planned with Adam._bucket) and the
NumPy implementation: the same buckets, so the same bits, through option
changes between steps, skipped params, clipping and errors.
"""

import copy
import pickle

import numpy as np
import pytest

import adamcore
from conftest import assert_optimizers_equal, requires_kernel

pytestmark = requires_kernel


def _kernel():
    from adamcore import _kernel
    return _kernel


def _python_planned(opt):
    """Make ``opt`` take the Python fast path (what impl="numpy" runs)."""
    opt._planned = type(opt)._step_planned
    return opt


@pytest.mark.parametrize("cls", [adamcore.Adam, adamcore.AdamW])
def test_c_optimizers_use_the_compiled_fast_path(cls):
    opt = cls([np.zeros(3, np.float32)], impl="c")
    assert opt._planned is _kernel().adam_planned_step
    assert cls([np.zeros(3)], impl="numpy")._planned is adamcore._base.Optimizer._step_planned


def test_a_subclass_changing_how_buckets_are_made_or_run_keeps_the_python_fast_path():
    class Doubled(adamcore.Adam):
        @staticmethod
        def _bucket(group, lists, grads, step, scale, new_keys):
            return adamcore.Adam._bucket(group, lists, grads, step, 2 * scale, new_keys)

    class Counted(adamcore.Adam):
        @staticmethod
        def _stepper(impl):
            return adamcore.Adam._stepper(impl)

    for cls in (Doubled, Counted):
        assert cls([np.zeros(3)], impl="c")._planned is adamcore._base.Optimizer._step_planned


def _groups(rng, dtype):
    shapes = [(5,), (3, 4), (17,), (2, 2, 2), (33,)]
    params = [rng.standard_normal(s).astype(dtype) for s in shapes]
    return params, [{"params": params[:2]}, {"params": params[2:4], "lr": 0.05, "amsgrad": True},
                    {"params": params[4:], "weight_decay": 0.1, "eps_mode": "keras"}]


# Changes made to the param groups before a step (step index -> change).
CHANGES = {
    3: lambda gs: gs[0].update(lr=0.003, betas=(0.8, 0.99)),
    5: lambda gs: gs[1].update(amsgrad=False),
    7: lambda gs: gs[2].update(decoupled_weight_decay=1, maximize=np.bool_(True)),
    9: lambda gs: gs[0].update(amsgrad=True, eps=1e-3, weight_decay=0.2),
    11: lambda gs: gs[2].update(betas=[0.7, 0.9], eps_mode="torch"),
    13: lambda gs: gs[1].update(lr=np.float32(0.02), maximize=0),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("clip", [None, 0.5])
def test_compiled_fast_path_gives_the_python_bits(rng, dtype, clip):
    runs = {}
    for name, impl in (("compiled", "c"), ("python", "c"), ("numpy", "numpy")):
        r = np.random.default_rng(7)
        params, groups = _groups(r, dtype)
        opt = adamcore.Adam(groups, lr=0.01, max_grad_norm=clip, impl=impl)
        if name == "python":
            _python_planned(opt)
        planned, taken = opt._planned, []
        opt._planned = lambda o, g, s: taken.append(planned(o, g, s)) or taken[-1]
        for t in range(16):
            if t in CHANGES:
                CHANGES[t](opt.param_groups)
            grads = [r.standard_normal(p.shape).astype(dtype) for p in params]
            if t in (4, 10):  # a group's params skipped: the general path, then plans again
                grads[4 if t == 4 else 2] = grads[4 if t == 4 else 3] = None
            opt.step(grads)
        # the fast path ran but at the 4 steps with skipped params or a new amsgrad
        assert sum(taken) == 11 and len(taken) == 15
        runs[name] = opt
    assert_optimizers_equal(runs["compiled"], runs["python"])
    assert_optimizers_equal(runs["compiled"], runs["numpy"])


@pytest.mark.parametrize("bad, error, message", [
    (dict(lr=-1.0), ValueError, "Invalid learning rate"),
    (dict(betas=(0.9,)), TypeError, r"betas must be a pair"),
    (dict(betas=(0.9, 1.5)), ValueError, "Invalid beta parameter at index 1"),
    (dict(eps_mode="tf"), ValueError, "eps_mode"),
    (dict(lr="0.1"), TypeError, "lr must be a real number"),
])
@pytest.mark.parametrize("path", ["compiled", "python", "numpy"])
def test_an_option_broken_between_steps_is_refused_alike(rng, bad, error, message, path):
    p = rng.standard_normal(8).astype(np.float32)
    g = rng.standard_normal(8).astype(np.float32)
    opt = adamcore.Adam([p], impl="numpy" if path == "numpy" else "c")
    if path == "python":
        _python_planned(opt)
    opt.step([g])
    before = p.copy(), opt.state[0]["exp_avg"].copy()
    opt.param_groups[0].update(bad)
    with pytest.raises(error, match=message):
        opt.step([g])
    np.testing.assert_array_equal(p, before[0])
    np.testing.assert_array_equal(opt.state[0]["exp_avg"], before[1])
    assert opt.state[0]["step"] == 1


@pytest.mark.parametrize("impl", ["c", "numpy"])
def test_bad_betas_in_a_group_without_grads_is_refused(rng, impl):
    """As in Python's fast path, every group's options are read, even those
    of a group whose params all skip this step."""
    p, q = (rng.standard_normal(4).astype(np.float32) for _ in range(2))
    opt = adamcore.Adam([{"params": [p]}, {"params": [q]}], impl=impl)
    opt.step([p * 0.1, q * 0.1])
    opt.param_groups[1]["betas"] = (0.9,)
    before = p.copy()
    with pytest.raises(TypeError, match="betas must be a pair"):
        opt.step([p * 0.1, None])
    np.testing.assert_array_equal(p, before)


@pytest.mark.parametrize("how", ["deepcopy", "pickle"])
def test_a_copied_optimizer_steps_on_identically(rng, how):
    """The binding's kept spans (in the optimizer's scratch) do not travel:
    the copy starts without them and checks its own arrays."""
    params = [rng.standard_normal(6).astype(np.float32) for _ in range(3)]
    grads = [rng.standard_normal(6).astype(np.float32) for _ in range(3)]
    opt = adamcore.Adam(params, impl="c")
    opt.step(grads)
    twin = copy.deepcopy(opt) if how == "deepcopy" else pickle.loads(pickle.dumps(opt))
    for o in (opt, twin):
        o.step(grads)
    assert_optimizers_equal(opt, twin)
    with pytest.raises(ValueError, match="overlaps"):
        twin.step([grads[0], twin.state[1]["exp_avg"], grads[2]])
