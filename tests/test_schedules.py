"""adamcore.schedules: values by hand and against torch.optim.lr_scheduler step
for step, state_dict round trips, C vs NumPy training under every schedule,
and argument checks.

Values are Python floats. Where torch chains ``lr *= ...`` and adamcore uses
the closed form they agree to rounding (rtol 1e-12); OneCycleLR and
ReduceLROnPlateau do torch's arithmetic and must match exactly. Tests that need
torch import it themselves, so the others run without it.
"""

import math

import numpy as np
import pytest

import adamcore
from adamcore import schedules
from adamcore.schedules import (ConstantLR, ExponentialLR, OneCycleLR, ReduceLROnPlateau,
                                StepLR, WarmupCosineLR)
from helpers import assert_optimizers_equal, requires_kernel

LRS = (1e-3, 3e-4)  # two param groups with different base lrs


def options(opt):
    """The param groups without their arrays, to compare two optimizers' options."""
    return [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]


def make_optimizer(cls=adamcore.Adam, lrs=LRS, impl="numpy", params=None):
    params = params or [np.zeros(3) for _ in lrs]
    return cls([{"params": [p], "lr": lr} for p, lr in zip(params, lrs)], impl=impl)


def torch_optimizer(torch):
    return torch.optim.Adam([{"params": [torch.zeros(1, requires_grad=True)], "lr": lr}
                             for lr in LRS])


def trace(sched, steps, metrics=None, tick=None):
    """(lrs, beta1s) of every group at steps 0..steps. ``tick`` runs before each
    step (torch wants its optimizer stepped first)."""
    groups = sched.optimizer.param_groups
    lrs, beta1s = [], []
    for t in range(steps + 1):
        if t:
            if tick:
                tick()
            sched.step() if metrics is None else sched.step(metrics[t - 1])
        lrs.append(sched.get_last_lr())
        assert lrs[-1] == [g["lr"] for g in groups], f"step {t}: group lrs != get_last_lr()"
        beta1s.append([g["betas"][0] for g in groups])
    return lrs, beta1s


def metric_curve(n=200, seed=7):
    """A noisy loss that improves, stalls, improves again and stalls."""
    t = np.arange(n)
    trend = np.select([t < 60, t < 100, t < 140], [1 - t / 100, 0.4, 0.4 - (t - 100) / 200], 0.2)
    return (trend + 0.01 * np.random.default_rng(seed).standard_normal(n)).tolist()


# ---- by hand (no torch) ------------------------------------------------------------

# lr 1.0, so the values are the schedule's factors; all exact except cos(pi/2) = 6e-17.
BY_HAND = [
    pytest.param(lambda o: ConstantLR(o, factor=0.5, total_iters=2), [0.5, 0.5, 1, 1],
                 id="constant"),
    pytest.param(lambda o: ConstantLR(o, factor=0.5, total_iters=0), [1, 1], id="constant-n0"),
    pytest.param(lambda o: StepLR(o, 2, gamma=0.5), [1, 1, 0.5, 0.5, 0.25], id="step"),
    pytest.param(lambda o: ExponentialLR(o, 0.5), [1, 0.5, 0.25, 0.125], id="exponential"),
    pytest.param(lambda o: WarmupCosineLR(o, 2, 4), [0, 0.5, 1, 0.5, 0, 0, 0],
                 id="warmup-cosine-hold"),
    pytest.param(lambda o: WarmupCosineLR(o, 0, 2, min_lr=0.5), [1, 0.75, 0.5, 0.5],
                 id="cosine-no-warmup-min0.5"),
    pytest.param(lambda o: OneCycleLR(o, 1.0, 4, pct_start=0.5, anneal_strategy="linear",
                                      div_factor=4.0, final_div_factor=2.0),
                 [0.25, 1, 0.5625, 0.125, 0.125], id="one-cycle-linear"),
]


@pytest.mark.parametrize("build, expected", BY_HAND)
def test_values_by_hand(build, expected):
    lrs, _ = trace(build(make_optimizer(lrs=[1.0])), len(expected) - 1)
    np.testing.assert_allclose([lr for (lr,) in lrs], expected, rtol=1e-15, atol=1e-16)


# (kwargs, metrics, lr after each step(metric)) for lr 1.0, factor 0.5
PLATEAU_BY_HAND = [
    pytest.param(dict(patience=1, cooldown=1), [1] * 7, [1, 1, 0.5, 0.5, 0.5, 0.25, 0.25],
                 id="patience1-cooldown1"),
    pytest.param(dict(patience=0, min_lr=0.3), [1] * 4, [1, 0.5, 0.3, 0.3], id="min-lr"),
    pytest.param(dict(patience=0, eps=0.5), [1] * 3, [1, 1, 1], id="cut-equal-to-eps-skipped"),
    pytest.param(dict(patience=0, threshold=0.0), [1] * 3, [1, 0.5, 0.25],
                 id="equal-metric-not-better"),
    pytest.param(dict(patience=0, threshold=0.0, mode="max"), [1] * 3, [1, 0.5, 0.25],
                 id="max-equal-metric-not-better"),
    pytest.param(dict(patience=0), [3, 2, 1, 1], [1, 1, 1, 0.5], id="min-improving"),
    pytest.param(dict(patience=0, mode="max"), [1, 2, 3, 3], [1, 1, 1, 0.5], id="max-improving"),
    pytest.param(dict(patience=0, threshold=0.1), [10, 9.5, 8.9], [1, 0.5, 0.5],
                 id="rel-threshold"),
    pytest.param(dict(patience=0, threshold=0.1, threshold_mode="abs"), [10, 9.5, 9.45],
                 [1, 1, 0.5], id="abs-threshold"),
]


@pytest.mark.parametrize("kwargs, metrics, expected", PLATEAU_BY_HAND)
def test_plateau_by_hand(kwargs, metrics, expected):
    sched = ReduceLROnPlateau(make_optimizer(lrs=[1.0]), factor=0.5, **kwargs)
    lrs, _ = trace(sched, len(metrics), metrics)
    assert [lr for (lr,) in lrs[1:]] == expected


# ---- against torch -------------------------------------------------------------------

STEPS = 150
# (schedule name, arguments: the same for adamcore and torch)
TORCH_CASES = [
    pytest.param("ConstantLR", {}, id="constant-defaults"),
    pytest.param("ConstantLR", dict(factor=0.5, total_iters=30), id="constant-f0.5-n30"),
    pytest.param("StepLR", dict(step_size=7), id="step-7"),
    pytest.param("StepLR", dict(step_size=1, gamma=0.9), id="step-1-g0.9"),
    pytest.param("StepLR", dict(step_size=30, gamma=2.0), id="step-30-g2"),
    pytest.param("ExponentialLR", dict(gamma=0.97), id="exponential-0.97"),
    pytest.param("ExponentialLR", dict(gamma=1.01), id="exponential-1.01"),
]


@pytest.mark.parametrize("name, kwargs", TORCH_CASES)
def test_matches_torch(name, kwargs):
    torch = pytest.importorskip("torch")
    ours, _ = trace(getattr(schedules, name)(make_optimizer(), **kwargs), STEPS)
    topt = torch_optimizer(torch)
    theirs = trace(getattr(torch.optim.lr_scheduler, name)(topt, **kwargs), STEPS,
                   tick=topt.step)[0]
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=0)


WARMUP_COSINE_CASES = [
    pytest.param(dict(warmup_steps=10, total_steps=STEPS, warmup_start_factor=0.1, min_lr=0.0),
                 id="w10-s0.1-min0"),
    pytest.param(dict(warmup_steps=40, total_steps=100, warmup_start_factor=1 / 3, min_lr=1e-4),
                 id="w40-s1_3-min1e-4"),
    pytest.param(dict(warmup_steps=5, total_steps=STEPS, warmup_start_factor=1.0, min_lr=2e-5),
                 id="w5-s1-min2e-5"),
    pytest.param(dict(warmup_steps=0, total_steps=STEPS, min_lr=1e-5), id="w0-min1e-5"),
]


@pytest.mark.parametrize("kwargs", WARMUP_COSINE_CASES)
def test_warmup_cosine_matches_torch(kwargs):
    torch = pytest.importorskip("torch")
    L = torch.optim.lr_scheduler
    w, total, min_lr = kwargs["warmup_steps"], kwargs["total_steps"], kwargs["min_lr"]
    ours, _ = trace(WarmupCosineLR(make_optimizer(), **kwargs), total)
    topt = torch_optimizer(torch)
    if w:
        warmup = L.LinearLR(topt, start_factor=kwargs["warmup_start_factor"], total_iters=w)
        cosine = L.CosineAnnealingLR(topt, T_max=total - w, eta_min=min_lr)
        tsched = L.SequentialLR(topt, [warmup, cosine], milestones=[w])
    else:
        tsched = L.CosineAnnealingLR(topt, T_max=total, eta_min=min_lr)
    theirs, _ = trace(tsched, total, tick=topt.step)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=0)


ONE_CYCLE_CASES = [
    pytest.param(dict(max_lr=0.01, total_steps=STEPS), id="defaults"),
    pytest.param(dict(max_lr=[0.01, 0.004], total_steps=STEPS, anneal_strategy="linear"),
                 id="per-group-max-lr-linear"),
    pytest.param(dict(max_lr=0.01, total_steps=101, pct_start=0.25, three_phase=True),
                 id="three-phase"),
    pytest.param(dict(max_lr=0.01, total_steps=STEPS, cycle_momentum=False, div_factor=10.0,
                      final_div_factor=100.0), id="no-momentum-div10-final100"),
    pytest.param(dict(max_lr=0.01, total_steps=STEPS, pct_start=0.5,
                      base_momentum=[0.8, 0.7], max_momentum=(0.9, 0.99)),
                 id="per-group-momentum"),
]


@pytest.mark.parametrize("kwargs", ONE_CYCLE_CASES)
def test_one_cycle_matches_torch(kwargs):
    """Bitwise for steps 0..total_steps - 1; at total_steps torch extrapolates
    the last phase and adamcore holds the cycle's end."""
    torch = pytest.importorskip("torch")
    total = kwargs["total_steps"]
    ours = trace(OneCycleLR(make_optimizer(), **kwargs), total)
    topt = torch_optimizer(torch)
    theirs = trace(torch.optim.lr_scheduler.OneCycleLR(topt, **kwargs), total, tick=topt.step)
    for name, a, b in zip(("lr", "beta1"), ours, theirs):
        assert a[:total] == b[:total], f"{name} differs from torch"
        assert a[total] == a[total - 1], f"{name} at total_steps is not the cycle's end"


PLATEAU_CASES = [
    pytest.param({}, id="defaults"),
    pytest.param(dict(patience=2), id="patience2"),
    pytest.param(dict(patience=0, cooldown=3, factor=0.5), id="patience0-cooldown3"),
    pytest.param(dict(patience=1, factor=0.3, min_lr=[2e-4, 1e-4]), id="per-group-min-lr"),
    pytest.param(dict(patience=1, factor=0.5, eps=1e-4), id="eps1e-4"),
    pytest.param(dict(patience=3, threshold=0.05), id="rel-threshold0.05"),
    pytest.param(dict(patience=1, cooldown=2, threshold_mode="abs", threshold=0.02),
                 id="abs-threshold0.02-cooldown2"),
    pytest.param(dict(mode="max", patience=2), id="max-rel"),
    pytest.param(dict(mode="max", patience=1, threshold_mode="abs", threshold=0.05),
                 id="max-abs-threshold0.05"),
]


@pytest.mark.parametrize("kwargs", PLATEAU_CASES)
def test_plateau_matches_torch(kwargs):
    """Bitwise lrs and the same best / bad-epoch / cooldown counters each step."""
    torch = pytest.importorskip("torch")
    metrics = metric_curve()
    if kwargs.get("mode") == "max":
        metrics = [-m for m in metrics]
    ours = ReduceLROnPlateau(make_optimizer(), **kwargs)
    topt = torch_optimizer(torch)
    theirs = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kwargs)
    for t, m in enumerate(metrics):
        topt.step()
        ours.step(m)
        theirs.step(m)
        for key in ("best", "num_bad_epochs", "cooldown_counter", "last_epoch"):
            assert getattr(ours, key) == getattr(theirs, key), f"step {t + 1}: {key} differs"
        assert ours.get_last_lr() == theirs.get_last_lr(), f"step {t + 1}: lrs differ"
    assert ours.get_last_lr() != list(LRS), "the case never cut the lr"


# ---- with the optimizers ---------------------------------------------------------------

# Every schedule, built on an optimizer; ReduceLROnPlateau steps on metric_curve().
SCHEDULES = [
    pytest.param(lambda o: ConstantLR(o, factor=0.5, total_iters=10), id="constant"),
    pytest.param(lambda o: StepLR(o, 7, gamma=0.5), id="step"),
    pytest.param(lambda o: ExponentialLR(o, 0.95), id="exponential"),
    pytest.param(lambda o: WarmupCosineLR(o, 5, 30, warmup_start_factor=0.1, min_lr=1e-5),
                 id="warmup-cosine"),
    pytest.param(lambda o: OneCycleLR(o, [0.01, 0.02], 40, three_phase=True), id="one-cycle"),
    pytest.param(lambda o: ReduceLROnPlateau(o, patience=1, cooldown=1, factor=0.5),
                 id="plateau"),
]


def step_schedule(sched, t):
    """The t-th step() (t >= 1), fed metric_curve() where the schedule wants a metric."""
    if isinstance(sched, ReduceLROnPlateau):
        sched.step(metric_curve()[t - 1])
    else:
        sched.step()


@requires_kernel
@pytest.mark.parametrize("build", SCHEDULES)
@pytest.mark.parametrize("cls", [adamcore.Adam, adamcore.AdamW], ids=["adam", "adamw"])
def test_training_c_equals_numpy(cls, build, rng):
    """A schedule only sets group lrs (and beta1): impl='c' and impl='numpy'
    still give bitwise equal params and state."""
    params = [rng.standard_normal(37).astype(np.float32), rng.standard_normal((4, 9))]
    opts = [make_optimizer(cls, impl=impl, params=[p.copy() for p in params])
            for impl in ("c", "numpy")]
    scheds = [build(opt) for opt in opts]
    for t in range(1, 31):
        grads = [rng.standard_normal(p.shape).astype(p.dtype) for p in params]
        for opt, sched in zip(opts, scheds):
            opt.step(grads)
            step_schedule(sched, t)
        assert scheds[0].get_last_lr() == scheds[1].get_last_lr()
    assert_optimizers_equal(*opts)
    assert [g["betas"] for g in opts[0].param_groups] == [g["betas"] for g in opts[1].param_groups]


LOAD_ORDERS = [pytest.param(("schedule", "optimizer"), id="schedule-then-optimizer"),
               pytest.param(("optimizer", "schedule"), id="optimizer-then-schedule"),
               pytest.param(("schedule",), id="schedule-only")]


@pytest.mark.parametrize("order", LOAD_ORDERS)
@pytest.mark.parametrize("build", SCHEDULES)
def test_state_dict_round_trip(build, order):
    """Saved after 12 steps and loaded into a new optimizer and schedule (in
    either order, or the schedule alone: it sets the groups' lrs and betas),
    the schedule continues exactly as the original."""
    opt, k = make_optimizer(), 12
    sched = build(opt)
    for t in range(1, k + 1):
        step_schedule(sched, t)
    saved_sched, saved_opt = sched.state_dict(), opt.state_dict()
    assert "optimizer" not in saved_sched

    new_opt = make_optimizer()
    new_sched = build(new_opt)
    for what in order:
        if what == "schedule":
            new_sched.load_state_dict(saved_sched)
        else:
            new_opt.load_state_dict(saved_opt)
    assert new_sched.state_dict() == saved_sched
    assert options(new_opt) == options(opt)
    for t in range(k + 1, k + 20):
        step_schedule(sched, t)
        step_schedule(new_sched, t)
        assert new_sched.get_last_lr() == sched.get_last_lr(), f"step {t}"
        assert options(new_opt) == options(opt), f"step {t}"


def test_state_dict_is_a_copy():
    sched = OneCycleLR(make_optimizer(), 0.01, 20)
    saved = sched.state_dict()
    saved["max_lrs"][0] = 1.0
    sched.get_last_lr()[0] = 1.0
    assert sched.state_dict()["max_lrs"][0] == 0.01
    assert sched.get_last_lr()[0] != 1.0


def test_load_state_dict_refuses_a_mismatch():
    sched = StepLR(make_optimizer(), 3)
    with pytest.raises(ValueError, match=r"StepLR state_dict must have keys"):
        sched.load_state_dict(ExponentialLR(make_optimizer(), 0.9).state_dict())
    with pytest.raises(ValueError, match=r"state_dict is for 1 param groups, this optimizer has 2"):
        sched.load_state_dict(StepLR(make_optimizer(lrs=[0.1]), 3).state_dict())


def test_one_cycle_refuses_a_step_past_total_steps():
    opt = make_optimizer()
    sched = OneCycleLR(opt, 0.01, 10)
    for _ in range(10):
        sched.step()
    before = sched.state_dict(), options(opt)
    with pytest.raises(ValueError, match=r"stepped past total_steps=10"):
        sched.step()
    assert (sched.state_dict(), options(opt)) == before


def test_group_added_after_the_schedule_is_refused():
    opt = make_optimizer()
    sched = ExponentialLR(opt, 0.9)
    opt.add_param_group({"params": [np.zeros(2)], "lr": 0.5})
    with pytest.raises(ValueError, match=r"3 param groups; this ExponentialLR was made for 2"):
        sched.step()


# ---- argument checks ----------------------------------------------------------------

BAD_ARGUMENTS = [
    pytest.param(lambda o: StepLR([1.0], 3), TypeError, "optimizer must have param_groups",
                 id="not-an-optimizer"),
    pytest.param(lambda o: ConstantLR(o, factor=1.5), ValueError, "factor must be >= 0 and <= 1",
                 id="constant-factor-1.5"),
    pytest.param(lambda o: ConstantLR(o, total_iters=-1), ValueError, "total_iters must be >= 0",
                 id="constant-total-iters-negative"),
    pytest.param(lambda o: StepLR(o, 0), ValueError, "step_size must be >= 1",
                 id="step-size-0"),
    pytest.param(lambda o: StepLR(o, 2.0), TypeError, "step_size must be an integer",
                 id="step-size-float"),
    pytest.param(lambda o: StepLR(o, 2, gamma=0.0), ValueError, "gamma must be > 0",
                 id="step-gamma-0"),
    pytest.param(lambda o: ExponentialLR(o, math.nan), ValueError, "gamma must be finite",
                 id="exponential-gamma-nan"),
    pytest.param(lambda o: ExponentialLR(o, "0.9"), TypeError, "gamma must be a real number",
                 id="exponential-gamma-str"),
    pytest.param(lambda o: WarmupCosineLR(o, 10, 10), ValueError,
                 r"total_steps must be > warmup_steps \(10\)", id="cosine-total-equals-warmup"),
    pytest.param(lambda o: WarmupCosineLR(o, -1, 10), ValueError, "warmup_steps must be >= 0",
                 id="cosine-warmup-negative"),
    pytest.param(lambda o: WarmupCosineLR(o, 1, 10, min_lr=[0.0]), ValueError,
                 r"min_lr must be a number or 2 numbers", id="cosine-min-lr-list-length"),
    pytest.param(lambda o: WarmupCosineLR(o, 1, 10, min_lr=-1e-3), ValueError,
                 "min_lr must be >= 0", id="cosine-min-lr-negative"),
    pytest.param(lambda o: OneCycleLR(o, 0.01, 0), ValueError, "total_steps must be >= 1",
                 id="one-cycle-total-steps-0"),
    pytest.param(lambda o: OneCycleLR(o, 0.01, 3), ValueError, "leaves a phase empty",
                 id="one-cycle-first-phase-empty"),
    pytest.param(lambda o: OneCycleLR(o, 0.01, 100, pct_start=0.6, three_phase=True),
                 ValueError, "leaves a phase empty", id="one-cycle-three-phase-last-empty"),
    pytest.param(lambda o: OneCycleLR(o, 0.01, 100, pct_start=1.5), ValueError,
                 "pct_start must be >= 0 and <= 1", id="one-cycle-pct-start-1.5"),
    pytest.param(lambda o: OneCycleLR(o, 0.01, 100, anneal_strategy="exp"), ValueError,
                 "anneal_strategy must be 'cos' or 'linear'", id="one-cycle-anneal-exp"),
    pytest.param(lambda o: OneCycleLR(o, 0.01, 100, max_momentum=1.0), ValueError,
                 "max_momentum must be >= 0 and < 1", id="one-cycle-max-momentum-1"),
    pytest.param(lambda o: OneCycleLR(o, 0.01, 100, div_factor=0), ValueError,
                 "div_factor must be > 0", id="one-cycle-div-factor-0"),
    pytest.param(lambda o: OneCycleLR(o, [0.01, -0.01], 100), ValueError,
                 r"max_lr\[1\] must be >= 0", id="one-cycle-max-lr-negative"),
    pytest.param(lambda o: OneCycleLR(o, 0.01, 100, three_phase=1), TypeError,
                 "three_phase must be a bool", id="one-cycle-three-phase-int"),
    pytest.param(lambda o: ReduceLROnPlateau(o, mode="lowest"), ValueError,
                 "mode must be 'min' or 'max'", id="plateau-mode"),
    pytest.param(lambda o: ReduceLROnPlateau(o, threshold_mode="pct"), ValueError,
                 "threshold_mode must be 'rel' or 'abs'", id="plateau-threshold-mode"),
    pytest.param(lambda o: ReduceLROnPlateau(o, factor=1.0), ValueError,
                 "factor must be >= 0 and < 1", id="plateau-factor-1"),
    pytest.param(lambda o: ReduceLROnPlateau(o, patience=-1), ValueError,
                 "patience must be >= 0", id="plateau-patience-negative"),
    pytest.param(lambda o: ReduceLROnPlateau(o, cooldown=True), TypeError,
                 "cooldown must be an integer", id="plateau-cooldown-bool"),
]


@pytest.mark.parametrize("build, error, message", BAD_ARGUMENTS)
def test_bad_arguments_raise(build, error, message):
    opt = make_optimizer()
    before = options(opt)
    with pytest.raises(error, match=message):
        build(opt)
    assert options(opt) == before, "a refused schedule changed the optimizer"


def test_one_cycle_needs_betas_to_cycle_momentum():
    class Plain:  # an optimizer without betas, such as SGD
        param_groups = [{"lr": 0.1}]
    with pytest.raises(ValueError, match="a param group has no 'betas'"):
        OneCycleLR(Plain(), 0.01, 100)
    plain = Plain()
    OneCycleLR(plain, 0.01, 100, cycle_momentum=False)
    assert plain.param_groups == [{"lr": pytest.approx(0.01 / 25.0, rel=1e-15)}]
