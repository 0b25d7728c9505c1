"""The step plan (adamcore.plan): params skipped for one step or for good stay
on the plan, in one call, with the bits of an independent reference that
steps each param alone; both implementations keep the same plan; option
changes are read at every step; a refused step changes nothing."""

import numpy as np
import pytest

import adamcore
from adamcore import _impl, kinds
from adamcore.plan import Plan
from helpers import IMPL_PARAMS, OPTIMIZERS, assert_optimizers_equal, random_values

KIND_NAMES = list(kinds.KINDS)
#: Options under which every kind uses all of its usual state.
OPTIONS = {"adam": dict(lr=1e-2), "sgd": dict(lr=1e-2, momentum=0.9),
           "rmsprop": dict(lr=1e-2, momentum=0.5, centered=True), "adagrad": dict(lr=1e-2),
           "adabelief": dict(lr=1e-2)}


def _params(rng, n=7, dtype=np.float32):
    return [random_values(rng, (3 + k % 4,), dtype) for k in range(n)]


def _grads(rng, params):
    return [random_values(rng, p.shape, p.dtype) for p in params]


def _alone(kind, params, options, schedule):
    """The independent reference: each param in an optimizer of its own
    (NumPy), stepped exactly when ``schedule`` gives it a grad."""
    cls = OPTIMIZERS[kind]
    opts = [cls([p], impl="numpy", **options) for p in params]
    for grads in schedule:
        for opt, g in zip(opts, grads):
            if g is not None:
                opt.step([g])
    return opts


def _schedule(rng, params, steps, skip):
    """``steps`` lists of grads, with None where ``skip(step, index)``."""
    return [[None if skip(t, i) else g for i, g in enumerate(_grads(rng, params))]
            for t in range(steps)]


SKIPS = {
    "frozen": lambda t, i: i == 3,
    "skipped-once": lambda t, i: i == 3 and t == 2,
    "frozen-after-two": lambda t, i: i == 5 and t >= 2,
    "joins-late": lambda t, i: i == 0 and t < 3,
    "random": lambda t, i: (7 * t + 3 * i) % 5 == 0,
}


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("skip", SKIPS, ids=str)
@pytest.mark.parametrize("kind", KIND_NAMES)
def test_skipped_params_match_each_param_stepped_alone(kind, skip, impl, rng):
    params = _params(rng)
    schedule = _schedule(rng, params, 8, SKIPS[skip])
    opt = OPTIMIZERS[kind]([p.copy() for p in params], impl=impl, **OPTIONS[kind])
    for grads in schedule:
        opt.step(grads)
    for i, alone in enumerate(_alone(kind, [p.copy() for p in params], OPTIONS[kind], schedule)):
        np.testing.assert_array_equal(opt.param_groups[0]["params"][i],
                                      alone.param_groups[0]["params"][0])
        assert (i in opt.state) == (0 in alone.state)
        if i in opt.state:
            for key, value in alone.state[0].items():
                np.testing.assert_array_equal(opt.state[i][key], value, err_msg=f"{i} {key}")


@pytest.mark.parametrize("skip", SKIPS, ids=str)
@pytest.mark.parametrize("kind", KIND_NAMES)
def test_both_implementations_keep_the_same_plan(kind, skip, rng):
    if _impl.kernel() is None:
        pytest.skip("the compiled extension adamcore._kernel is not built")
    params = _params(rng)
    schedule = _schedule(rng, params, 8, SKIPS[skip])
    c = OPTIMIZERS[kind]([p.copy() for p in params], impl="c", **OPTIONS[kind])
    ref = OPTIMIZERS[kind]([p.copy() for p in params], impl="numpy", **OPTIONS[kind])
    for grads in schedule:
        c.step(grads)
        ref.step(grads)
        assert [r.indices for r in c._plan.rows] == [r.indices for r in ref._plan.rows]
        np.testing.assert_array_equal(c._plan.steps, ref._plan.steps)
        np.testing.assert_array_equal(c._plan.first, ref._plan.first)
        assert c._plan.outside == ref._plan.outside
    assert_optimizers_equal(c, ref)


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("skip", ["frozen", "skipped-once", "frozen-after-two"])
def test_skips_stay_on_the_plan(skip, impl, rng, monkeypatch):
    """After the first step no step takes the general path, and a skip costs
    at most one row more."""
    params = _params(rng, 20)
    schedule = _schedule(rng, params, 8, SKIPS[skip])
    opt = adamcore.Adam(params, impl=impl)
    opt.step([g if g is not None else np.zeros_like(p) for g, p in zip(schedule[0], params)]
             if skip != "frozen" else schedule[0])

    def general(grads, scale):
        raise AssertionError("took the general path")
    monkeypatch.setattr(opt, "_step_general", general)
    for grads in schedule[1:]:
        opt.step(grads)
        assert len(opt._plan.rows) <= 2


def test_rows_of_equal_count_merge_again():
    """Two params skipped at the same step share a row afterwards."""
    rng = np.random.default_rng(3)
    params = _params(rng, 6)
    opt = adamcore.Adam(params, impl="numpy")
    g = _grads(rng, params)
    opt.step(g)
    opt.step([None if i in (1, 4) else x for i, x in enumerate(g)])
    assert [r.indices for r in opt._plan.rows] == [[0, 2, 3, 5], [1, 4]]
    opt.step(g)
    assert [r.indices for r in opt._plan.rows] == [[0, 2, 3, 5], [1, 4]]
    assert opt._plan.steps.tolist() == [3, 2]


@pytest.mark.parametrize("impl", IMPL_PARAMS)
def test_options_changed_between_steps_are_read(impl, rng):
    """lr from a schedule, betas replaced, a list of betas changed in place,
    amsgrad switched on: every step uses the options as they are then."""
    params = _params(rng, 4)
    schedule = _schedule(rng, params, 6, SKIPS["skipped-once"])
    a = adamcore.Adam([p.copy() for p in params], impl=impl)
    b = adamcore.Adam([p.copy() for p in params], impl="numpy")
    betas = [0.9, 0.99]
    for t, grads in enumerate(schedule):
        for opt in (a, b):
            group = opt.param_groups[0]
            group["lr"] = 1e-3 * (t + 1)
            if t == 2:
                group["betas"] = betas if opt is a else (0.9, 0.99)
            if t == 3:
                group["amsgrad"] = True
        if t == 4:
            betas[1] = 0.95  # the same list object, new contents
            b.param_groups[0]["betas"] = (0.9, 0.95)
        a.step(grads)
        b.step(grads)
    assert_optimizers_equal(a, b)
    assert "max_exp_avg_sq" in a.state[0]


@pytest.mark.parametrize("impl", IMPL_PARAMS)
def test_a_refused_step_changes_nothing_on_the_plan(impl, rng):
    params = _params(rng, 5)
    opt = adamcore.Adam(params, impl=impl)
    g = _grads(rng, params)
    opt.step(g)
    opt.step([None if i == 2 else x for i, x in enumerate(g)])
    rows = [list(r.indices) for r in opt._plan.rows]
    steps = opt._plan.steps.copy()
    before = [p.copy() for p in params]
    bad = list(g)
    bad[4] = g[4].astype(np.float64)
    bad[2] = None
    with pytest.raises(TypeError, match=r"grads\[4\] has dtype float64"):
        opt.step(bad)
    assert [list(r.indices) for r in opt._plan.rows] == rows
    np.testing.assert_array_equal(opt._plan.steps, steps)
    for p, q in zip(params, before):
        np.testing.assert_array_equal(p, q)


def test_plan_build_puts_params_without_state_outside():
    rng = np.random.default_rng(5)
    params = _params(rng, 3)
    group = {"params": params, **adamcore.Adam(params).defaults}
    arrays = [{"exp_avg": np.zeros_like(params[0]), "exp_avg_sq": np.zeros_like(params[0])},
              None, {"exp_avg": np.zeros_like(params[2])}]
    plan = Plan.build(kinds.ADAM, [group], arrays, np.array([4, 0, 1]))
    assert [r.indices for r in plan.rows] == [[0]] and plan.outside == [1, 2]
    assert plan.steps.tolist() == [4]
    assert plan.buckets([None, rng.standard_normal(3).astype(np.float32), None], 1.0) is None
    assert plan.buckets([None] * 3, 1.0) == []


@pytest.mark.parametrize("impl", IMPL_PARAMS)
def test_param_groups_replaced_or_shrunk(impl, rng):
    """A param_groups list replaced by the user is read again; one that lost a
    group is refused (groups are added with add_param_group)."""
    params = _params(rng, 4)
    a = adamcore.Adam([{"params": params[:2]}, {"params": params[2:]}], impl=impl)
    b = adamcore.Adam([{"params": [p.copy() for p in params[:2]]},
                       {"params": [p.copy() for p in params[2:]]}], impl="numpy")
    g = _grads(rng, params)
    a.step(g)
    b.step(g)
    a.param_groups = [dict(group, lr=0.05) for group in a.param_groups]
    for group in b.param_groups:
        group["lr"] = 0.05
    a.step(g)
    b.step(g)
    assert_optimizers_equal(a, b)
    a.param_groups.pop()
    with pytest.raises(ValueError, match=r"^param_groups changed from 2 to 1 groups"):
        a.step(g)


@pytest.mark.parametrize("impl", IMPL_PARAMS)
def test_an_option_read_once_per_step(impl, rng):
    """An option whose float() changes the group: the step uses the value
    read, and the next step reads the group again."""
    class Sly(float):
        def __float__(self):
            group["lr"] = 0.5
            return float.__float__(self)
    params = _params(rng, 2)
    a = adamcore.Adam([p.copy() for p in params], impl=impl)
    b = adamcore.Adam([p.copy() for p in params], impl="numpy")
    g = _grads(rng, params)
    group = a.param_groups[0]
    a.step(g)
    b.step(g)
    group["lr"] = Sly(0.01)
    a.step(g)
    b.param_groups[0]["lr"] = 0.01
    b.step(g)
    assert group["lr"] == 0.5
    a.step(g)
    b.param_groups[0]["lr"] = 0.5
    b.step(g)
    assert_optimizers_equal(a, b)


def test_a_plan_that_does_not_fit_is_refused():
    if _impl.kernel() is None:
        pytest.skip("the compiled extension adamcore._kernel is not built")
    from adamcore.plan import Row
    p = np.zeros(3, np.float32)
    group = {"params": [p], **adamcore.Adam([p]).defaults}
    plan = Plan(kinds.ADAM, [group], [Row(0, 3, [5], [p], ([p], [p], None))], [0], [0], [], 1)
    with pytest.raises(ValueError, match="a plan's rows do not fit"):
        _impl.kernel().run(plan, [p], 1.0)
