"""The optimizers' shared API, for every kind of the registry (adamcore.kinds):
param groups, None grads, apply_gradients, state_dict, save/load, schedules,
clipping, skipping; each keeps PyTorch's state semantics (Adam's own cases
are in test_optimizer.py).

Where a result can be written down exactly (an SGD step is p - lr*g in the
param's dtype), it is compared bit for bit; elsewhere two runs that must agree
are compared bit for bit with each other.
"""

import threading

import numpy as np
import pytest

import adamcore
from helpers import (
    IMPL_PARAMS,
    OPTIMIZERS,
    PARALLEL_MIN,
    assert_bitwise_equal,
    assert_optimizer_snapshot_equal,
    assert_optimizers_equal,
    optimizer_snapshot,
    random_values,
    requires_kernel,
)

impls = pytest.mark.parametrize("impl", IMPL_PARAMS)
CLASSES = {cls.__name__: cls for cls in OPTIMIZERS.values()}
#: options using every state slot of each class
FULL = {
    "Adam": dict(lr=1e-3, amsgrad=True, weight_decay=0.01),
    "SGD": dict(lr=0.01, momentum=0.9, dampening=0.1, weight_decay=0.01),
    "RMSprop": dict(lr=1e-3, momentum=0.9, centered=True, weight_decay=0.01),
    "Adagrad": dict(lr=0.05, lr_decay=0.01, initial_accumulator_value=0.1),
    "AdaBelief": dict(lr=1e-3, amsgrad=True, weight_decay=0.01),
}
classes = pytest.mark.parametrize("cls_name", list(CLASSES))


def make_params(rng, shapes=((5,), (3, 4), (7,)), dtype=np.float32):
    return [random_values(rng, s, dtype) for s in shapes]


def grads_for(params, rng):
    return [random_values(rng, p.shape, p.dtype) for p in params]


def copies(params):
    return [p.copy() for p in params]


def make(cls_name, params, impl, **options):
    return CLASSES[cls_name](params, **{**FULL[cls_name], **options}, impl=impl)


# ---- defaults and state keys ------------------------------------------------------

def test_defaults():
    p = [np.zeros(3, np.float32)]
    assert adamcore.SGD(p).defaults == dict(lr=1e-3, momentum=0.0, dampening=0.0,
                                            weight_decay=0.0, nesterov=False, maximize=False)
    assert adamcore.RMSprop(p).defaults == dict(lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0,
                                                momentum=0.0, centered=False, maximize=False)
    assert adamcore.Adagrad(p).defaults == dict(lr=1e-2, lr_decay=0.0, weight_decay=0.0,
                                                initial_accumulator_value=0.0, eps=1e-10,
                                                maximize=False)
    assert adamcore.AdaBelief(p).defaults["eps"] == 1e-16


STATE_KEYS = [
    ("SGD", dict(), set()),
    ("SGD", dict(momentum=0.9), {"momentum_buffer"}),
    ("SGD", dict(momentum=0.9, nesterov=True), {"momentum_buffer"}),
    ("RMSprop", dict(), {"square_avg"}),
    ("RMSprop", dict(momentum=0.5), {"square_avg", "momentum_buffer"}),
    ("RMSprop", dict(centered=True), {"square_avg", "grad_avg"}),
    ("RMSprop", dict(centered=True, momentum=0.5), {"square_avg", "momentum_buffer", "grad_avg"}),
    ("Adagrad", dict(), {"sum"}),
    ("Adagrad", dict(lr_decay=0.1, initial_accumulator_value=1.0), {"sum"}),
    ("AdaBelief", dict(), {"exp_avg", "exp_avg_var"}),
    ("AdaBelief", dict(weight_decay=0.1, decoupled_weight_decay=False),
     {"exp_avg", "exp_avg_var"}),
    ("AdaBelief", dict(amsgrad=True), {"exp_avg", "exp_avg_var", "max_exp_avg_var"}),
]


@impls
@pytest.mark.parametrize("case", STATE_KEYS, ids=lambda c: f"{c[0]}-" + "-".join(
    f"{k}{v}" for k, v in c[1].items()))
def test_state_keys_follow_options(case, impl):
    cls_name, options, keys = case
    rng = np.random.default_rng(0)
    params = make_params(rng)
    opt = CLASSES[cls_name](params, **options, impl=impl)
    assert len(opt.state) == 0  # lazy, as in PyTorch
    assert opt.step(grads_for(params, rng)) is True
    for i, p in enumerate(params):
        st = opt.state[i]
        assert set(st) == keys | {"step"}
        assert st["step"] == 1
        for k in keys:
            assert st[k].shape == p.shape and st[k].dtype == p.dtype
            assert st[k].flags.c_contiguous


@classes
def test_state_view_is_read_only(cls_name):
    params = make_params(np.random.default_rng(0))
    opt = make(cls_name, params, "numpy")
    opt.step(grads_for(params, np.random.default_rng(1)))
    with pytest.raises(TypeError):
        opt.state[0]["step"] = 5
    with pytest.raises(KeyError):
        opt.state[3]


# ---- exact single-step semantics --------------------------------------------------------

@impls
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_sgd_momentum_first_step_sets_buffer_to_grad(dtype, impl):
    """PyTorch: the first step's buffer is g itself, not (1 - dampening) * g; the
    dampening applies from the second step."""
    rng = np.random.default_rng(4)
    p = random_values(rng, (40,), dtype)
    p0 = p.copy()
    mom, damp, lr = 0.9, 0.5, 0.1
    opt = adamcore.SGD([p], lr=lr, momentum=mom, dampening=damp, impl=impl)
    g1, g2 = random_values(rng, (40,), dtype), random_values(rng, (40,), dtype)
    opt.step([g1])
    assert_bitwise_equal(opt.state[0]["momentum_buffer"], g1, "buf after step 1")
    assert_bitwise_equal(p, p0 - dtype(lr) * g1, "param after step 1")
    p1 = p.copy()
    opt.step([g2])
    buf = dtype(mom) * g1 + dtype(1 - damp) * g2
    assert_bitwise_equal(opt.state[0]["momentum_buffer"], buf, "buf after step 2")
    assert_bitwise_equal(p, p1 - dtype(lr) * buf, "param after step 2")


@impls
def test_sgd_nesterov_step(impl):
    rng = np.random.default_rng(5)
    p = random_values(rng, (33,), np.float64)
    p0 = p.copy()
    opt = adamcore.SGD([p], lr=0.1, momentum=0.9, nesterov=True, impl=impl)
    g = random_values(rng, (33,), np.float64)
    opt.step([g])
    assert_bitwise_equal(p, p0 - 0.1 * (g + 0.9 * g))  # buf = g; g + mom*buf


@impls
def test_plain_sgd_step_is_exact(impl):
    rng = np.random.default_rng(6)
    p = random_values(rng, (50,), np.float32)
    p0 = p.copy()
    g = random_values(rng, (50,), np.float32)
    opt = adamcore.SGD([p], lr=0.25, weight_decay=0.5, maximize=True, impl=impl)
    opt.step([g])
    assert_bitwise_equal(p, p0 - np.float32(0.25) * (-g + np.float32(0.5) * p0))
    assert set(opt.state[0]) == {"step"}


@impls
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_adagrad_initial_accumulator_value(dtype, impl):
    """``sum`` starts at initial_accumulator_value (each group's own)."""
    rng = np.random.default_rng(7)
    p = [random_values(rng, (9,), dtype), random_values(rng, (4,), dtype)]
    opt = adamcore.Adagrad([{"params": [p[0]]},
                            {"params": [p[1]], "initial_accumulator_value": 2.5}],
                           lr=0.1, initial_accumulator_value=0.75, impl=impl)
    g = grads_for(p, rng)
    opt.step(g)
    assert_bitwise_equal(opt.state[0]["sum"], dtype(0.75) + g[0] * g[0])
    assert_bitwise_equal(opt.state[1]["sum"], dtype(2.5) + g[1] * g[1])
    # A param whose first step comes later also starts from the value.
    q = np.zeros(3, dtype)
    opt.add_param_group({"params": [q], "initial_accumulator_value": 0.5})
    opt.step([None, None, np.ones(3, dtype)])
    assert_bitwise_equal(opt.state[2]["sum"], np.full(3, 1.5, dtype))


@impls
def test_adagrad_lr_decay_uses_step_count(impl):
    """clr = lr / (1 + (t-1)*lr_decay): with sum huge and constant, each step
    moves by about clr * g / sqrt(sum)."""
    p = np.zeros(4)
    opt = adamcore.Adagrad([p], lr=1.0, lr_decay=1.0, initial_accumulator_value=1e12, eps=0.0,
                           impl=impl)
    moves = []
    for _ in range(4):
        before = p.copy()
        opt.step([np.ones(4)])
        moves.append(before[0] - p[0])
    np.testing.assert_allclose(moves, [1e-6 / t for t in (1, 2, 3, 4)], rtol=1e-9)


# ---- groups, None grads, apply_gradients --------------------------------------------

GROUP_OPTIONS = {
    "Adam": [dict(lr=0.01), dict(amsgrad=True), dict(weight_decay=0.1, maximize=True)],
    "SGD": [dict(lr=0.1), dict(momentum=0.9, nesterov=True), dict(momentum=0.5, dampening=0.5,
                                                                 maximize=True)],
    "RMSprop": [dict(lr=0.01), dict(momentum=0.9), dict(centered=True, alpha=0.9)],
    "Adagrad": [dict(lr=0.1), dict(lr_decay=0.1), dict(initial_accumulator_value=1.0,
                                                        maximize=True)],
    "AdaBelief": [dict(lr=0.01), dict(amsgrad=True), dict(weight_decay=0.1,
                                                          decoupled_weight_decay=False)],
}


@impls
@classes
def test_param_groups_equal_separate_optimizers(cls_name, impl):
    """Each group steps as an optimizer of its own with its options would."""
    rng = np.random.default_rng(8)
    shapes = [[(5,), (2, 3)], [(40,)], [(7,), (1,)]]
    params = [[random_values(rng, s, np.float32) for s in group] for group in shapes]
    grads = [[[random_values(rng, s, np.float32) for s in group] for group in shapes]
             for _ in range(4)]
    opts = GROUP_OPTIONS[cls_name]
    together = CLASSES[cls_name]([{"params": copies(ps), **o} for ps, o in zip(params, opts)],
                                 impl=impl)
    alone = [CLASSES[cls_name](copies(ps), **o, impl=impl) for ps, o in zip(params, opts)]
    for gs in grads:
        together.step([g for group in gs for g in group])
        for opt, group in zip(alone, gs):
            opt.step(group)
    assert [g[k] for g in together.param_groups for k in ("lr",)] == [
        o.param_groups[0]["lr"] for o in alone]
    flat = [p for g in together.param_groups for p in g["params"]]
    k = 0
    for opt in alone:
        for i, p in enumerate(opt.param_groups[0]["params"]):
            assert_bitwise_equal(flat[k], p, f"params[{k}]")
            for key, a in opt.state[i].items():
                if key == "step":
                    assert together.state[k]["step"] == a
                else:
                    assert_bitwise_equal(together.state[k][key], a, f"state[{k}][{key}]")
            k += 1


@impls
@classes
def test_none_grad_skips_param(cls_name, impl):
    rng = np.random.default_rng(9)
    params = make_params(rng)
    grads = [grads_for(params, rng) for _ in range(4)]
    opt = make(cls_name, params, impl)
    ref = make(cls_name, [copies(params)[0], copies(params)[2]], impl)
    middle = params[1].copy()
    for gs in grads:
        opt.step([gs[0], None, gs[2]])
        ref.step([gs[0], gs[2]])
    assert_bitwise_equal(params[1], middle, "skipped param")
    assert 1 not in opt.state
    assert_bitwise_equal(params[0], ref.param_groups[0]["params"][0])
    assert_bitwise_equal(params[2], ref.param_groups[0]["params"][1])
    # The skipped param joins later with its own step count.
    opt.step(grads[0])
    assert [opt.state[i]["step"] for i in range(3)] == [5, 1, 5]


@impls
@classes
def test_apply_gradients_equals_step(cls_name, impl):
    rng = np.random.default_rng(10)
    params = make_params(rng)
    grads = [grads_for(params, rng) for _ in range(3)]
    a = make(cls_name, copies(params), impl)
    b = make(cls_name, copies(params), impl)
    for gs in grads:
        a.step(gs)
        pb = b.param_groups[0]["params"]
        b.apply_gradients(reversed(list(zip(gs, pb))))  # order does not matter
    assert_optimizers_equal(a, b)


# ---- state_dict and checkpoints ----------------------------------------------------

@impls
@classes
def test_state_dict_round_trip_continues_bitwise(cls_name, impl):
    rng = np.random.default_rng(11)
    params = make_params(rng) + [random_values(rng, (6,), np.float64)]
    grads = [grads_for(params, rng) for _ in range(6)]
    grads[1][2] = None  # state at different step counts
    a = CLASSES[cls_name]([{"params": params[:2]}, {"params": params[2:], "lr": 0.5}],
                          **FULL[cls_name], impl=impl)
    for gs in grads[:3]:
        a.step(gs)
    sd = a.state_dict()
    saved = copies(params)
    assert sorted(sd) == ["param_groups", "state"]
    assert sd["param_groups"][1]["params"] == [2, 3]
    assert sd["state"][2]["step"] == 2
    b = CLASSES[cls_name]([{"params": saved[:2]}, {"params": saved[2:]}], impl=impl)
    b.load_state_dict(sd)
    assert b.param_groups[1]["lr"] == 0.5
    assert b.param_groups[0] == {**a.param_groups[0], "params": b.param_groups[0]["params"]}
    # The state_dict holds copies: stepping either side leaves it as it was.
    sd_bits = {i: {k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in st.items()}
               for i, st in sd["state"].items()}
    for gs in grads[3:]:
        a.step(gs)
        b.step(gs)
    assert_optimizers_equal(a, b)
    for i, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, np.ndarray):
                assert_bitwise_equal(v, sd_bits[i][k], f"state_dict state[{i}][{k}]")


@impls
@pytest.mark.parametrize("cls_name", [c for c in CLASSES if CLASSES[c].ALWAYS_KEYS])
def test_load_state_dict_refuses_missing_state(cls_name, impl):
    rng = np.random.default_rng(12)
    params = make_params(rng)
    a = make(cls_name, params, impl)
    a.step(grads_for(params, rng))
    sd = a.state_dict()
    key = CLASSES[cls_name].ALWAYS_KEYS[0]
    del sd["state"][0][key]
    b = make(cls_name, copies(params), impl)
    before = optimizer_snapshot(b)
    with pytest.raises(ValueError, match=r"^state\[0\] must hold 'step' and"):
        b.load_state_dict(sd)
    assert_optimizer_snapshot_equal(optimizer_snapshot(b), before)


# (class, options off, the option that adds state, its value)
OPTION_ADDS_STATE = [("SGD", dict(lr=0.01, dampening=0.1), "momentum", 0.9),
                     ("RMSprop", dict(lr=1e-3), "centered", True),
                     ("RMSprop", dict(lr=1e-3), "momentum", 0.9),
                     ("AdaBelief", dict(lr=1e-3), "amsgrad", True)]


@impls
@pytest.mark.parametrize("case", OPTION_ADDS_STATE, ids=lambda c: f"{c[0]}-{c[2]}")
def test_state_saved_before_an_option_adds_state_loads_and_continues(case, impl):
    """An option switched on mid-run adds its state at the next step; a
    state_dict taken in between lacks it, loads, and continues identically."""
    cls_name, options, option, value = case
    rng = np.random.default_rng(14)
    params = make_params(rng)
    grads = [grads_for(params, rng) for _ in range(4)]
    a = CLASSES[cls_name](params, **options, impl=impl)
    a.step(grads[0])
    a.param_groups[0][option] = value
    sd = a.state_dict()
    b = CLASSES[cls_name](copies(params), **options, impl=impl)
    b.load_state_dict(sd)
    for g in grads[1:]:
        a.step(g)
        b.step(g)
    assert_optimizers_equal(a, b)
    assert set(b.state[0]) - {"step"} == set(b.KIND.slots_used(b.param_groups[0]))


@impls
@classes
def test_save_load_round_trip(cls_name, impl, tmp_path):
    rng = np.random.default_rng(13)
    params = make_params(rng) + [random_values(rng, (2, 2), np.float64)]
    grads = [grads_for(params, rng) for _ in range(6)]
    options = {**FULL[cls_name]}
    if cls_name == "SGD":
        options.update(nesterov=True, dampening=0.0, maximize=True)
    if cls_name == "AdaBelief":
        options.update(betas=(0.8, 0.99), decoupled_weight_decay=False)
    a = CLASSES[cls_name]([{"params": params[:3]}, {"params": params[3:], "lr": 0.2}],
                          **options, impl=impl)
    for gs in grads[:3]:
        a.step(gs)
    path = tmp_path / f"{cls_name}.npz"
    a.save(path)
    restored = copies(params)
    b = CLASSES[cls_name].load(path, restored, impl=impl)
    assert type(b) is CLASSES[cls_name]
    assert b.defaults == a.defaults
    assert [{k: v for k, v in g.items() if k != "params"} for g in b.param_groups] == [
        {k: v for k, v in g.items() if k != "params"} for g in a.param_groups]
    assert_optimizers_equal(a, b)
    for gs in grads[3:]:
        a.step(gs)
        b.step(gs)
    assert_optimizers_equal(a, b)
    other = "Adagrad" if cls_name != "Adagrad" else "SGD"
    with pytest.raises(ValueError, match=rf"saved from {cls_name}, not {other}"):
        CLASSES[other].load(path, copies(params))


# ---- schedules, clipping, skipping -------------------------------------------------------

@impls
def test_schedule_changes_sgd_lr(impl):
    """StepLR halves lr every 2 steps; plain SGD then moves by exactly lr_t * g."""
    rng = np.random.default_rng(14)
    p = random_values(rng, (20,), np.float32)
    opt = adamcore.SGD([p], lr=0.5, impl=impl)
    sched = adamcore.StepLR(opt, step_size=2, gamma=0.5)
    lrs = []
    for _ in range(6):
        lr = opt.param_groups[0]["lr"]
        lrs.append(lr)
        g = random_values(rng, (20,), np.float32)
        expected = p - np.float32(lr) * g
        opt.step([g])
        sched.step()
        assert_bitwise_equal(p, expected)
    assert lrs == [0.5, 0.5, 0.25, 0.25, 0.125, 0.125]


@impls
@classes
def test_schedule_equals_setting_lr_by_hand(cls_name, impl):
    rng = np.random.default_rng(15)
    params = make_params(rng)
    grads = [grads_for(params, rng) for _ in range(8)]
    a = make(cls_name, copies(params), impl)
    b = make(cls_name, copies(params), impl)
    sched = adamcore.ExponentialLR(a, gamma=0.7)
    base = b.param_groups[0]["lr"]
    for t, gs in enumerate(grads):
        b.param_groups[0]["lr"] = base * 0.7 ** t
        a.step(gs)
        b.step(gs)
        sched.step()
    assert_optimizers_equal(a, b)
    c = make(cls_name, copies(params), impl)  # and without the schedule: different
    for gs in grads:
        c.step(gs)
    assert not np.array_equal(c.param_groups[0]["params"][0], a.param_groups[0]["params"][0])


@impls
@classes
def test_max_grad_norm_scales_grads(cls_name, impl):
    """Clipping equals stepping with the grads times the clip coefficient
    (grad_scale multiplies g first, in the param's dtype, as a pre-scaled grad
    would be)."""
    rng = np.random.default_rng(16)
    params = make_params(rng, dtype=np.float64)
    grads = [[g * 10 for g in grads_for(params, rng)] for _ in range(4)]
    max_norm = 1.5
    a = make(cls_name, copies(params), impl, max_grad_norm=max_norm)
    b = make(cls_name, copies(params), impl)
    for gs in grads:
        a.step(gs)
        norm = np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in gs))
        np.testing.assert_allclose(a.last_grad_norm, norm, rtol=1e-12)
        coef = min(max_norm / (a.last_grad_norm + 1e-6), 1.0)
        assert coef < 0.2  # these grads are clipped
        b.step([g * np.float64(coef) for g in gs])
    assert_optimizers_equal(a, b)
    # Below the threshold nothing is scaled.
    small = [[g * 1e-3 for g in gs] for gs in grads[:1]]
    c = make(cls_name, copies(params), impl, max_grad_norm=1e6)
    d = make(cls_name, copies(params), impl)
    c.step(small[0])
    d.step(small[0])
    assert_optimizers_equal(c, d)


@impls
@classes
def test_skip_nonfinite(cls_name, impl):
    rng = np.random.default_rng(17)
    params = make_params(rng)
    a = make(cls_name, params, impl, skip_nonfinite=True)
    b = make(cls_name, copies(params), impl)
    g = grads_for(params, rng)
    a.step(g)
    b.step(g)
    before = optimizer_snapshot(a)
    for bad in (np.nan, np.inf, -np.inf):
        gs = grads_for(params, rng)
        gs[1][1, 2] = bad
        assert a.step(gs) is False
        assert_optimizer_snapshot_equal(optimizer_snapshot(a), before)
    assert a.skipped_steps == 3
    g = grads_for(params, rng)
    assert a.step(g) is True
    b.step(g)
    assert_optimizers_equal(a, b)


@impls
def test_nonfinite_grads_propagate_without_skip(impl):
    p = np.zeros(4, np.float32)
    opt = adamcore.SGD([p], lr=0.1, impl=impl)
    opt.step([np.array([np.nan, 1, np.inf, 0], np.float32)])
    assert np.isnan(p[0]) and p[1] == np.float32(-0.1) and np.isinf(p[2]) and p[3] == 0


# ---- options switched mid-run -----------------------------------------------------------

@impls
def test_sgd_momentum_switched_on_and_off(impl):
    """Enabling momentum later starts the buffer at that step's g (as a first
    step); disabling it leaves the buffer as it was, and re-enabling continues
    from it (PyTorch keeps momentum_buffer in the state the same way)."""
    dtype = np.float64
    rng = np.random.default_rng(18)
    p = random_values(rng, (10,), dtype)
    opt = adamcore.SGD([p], lr=0.1, impl=impl)
    g = [random_values(rng, (10,), dtype) for _ in range(5)]
    opt.step([g[0]])
    assert "momentum_buffer" not in opt.state[0]
    opt.param_groups[0].update(momentum=0.9, dampening=0.5)
    before = p.copy()
    opt.step([g[1]])
    assert_bitwise_equal(opt.state[0]["momentum_buffer"], g[1])
    assert_bitwise_equal(p, before - 0.1 * g[1])
    opt.param_groups[0]["momentum"] = 0.0
    before = p.copy()
    opt.step([g[2]])
    assert_bitwise_equal(p, before - 0.1 * g[2])
    assert_bitwise_equal(opt.state[0]["momentum_buffer"], g[1], "kept while disabled")
    opt.param_groups[0]["momentum"] = 0.9
    before = p.copy()
    opt.step([g[3]])
    buf = 0.9 * g[1] + 0.5 * g[3]
    assert_bitwise_equal(opt.state[0]["momentum_buffer"], buf)
    assert_bitwise_equal(p, before - 0.1 * buf)
    assert opt.state[0]["step"] == 4


SWITCHES = [
    # (class, options before, options switched on, new key, its value after the step)
    ("RMSprop", dict(), dict(momentum=0.5), "momentum_buffer", "nonzero"),
    ("RMSprop", dict(), dict(centered=True), "grad_avg", "(1-alpha)*g"),
    ("AdaBelief", dict(), dict(amsgrad=True), "max_exp_avg_var", "exp_avg_var"),
]


@impls
@pytest.mark.parametrize("case", SWITCHES, ids=lambda c: f"{c[0]}-{c[3]}")
def test_option_switched_on_mid_run(case, impl):
    """New state starts at zero on the step that first uses it; the other state
    carries on, and results equal an optimizer that never had the option
    until a state_dict with the new zero state is loaded."""
    cls_name, before, switch, key, value = case
    rng = np.random.default_rng(19)
    p = random_values(rng, (30,), np.float64)
    grads = [random_values(rng, (30,), np.float64) for _ in range(4)]
    opt = CLASSES[cls_name]([p], **before, impl=impl)
    for g in grads[:2]:
        opt.step([g])
    assert key not in opt.state[0]
    # The same run, with the new state given as explicit zeros through load_state_dict.
    twin = CLASSES[cls_name]([p.copy()], **before, impl=impl)
    sd = opt.state_dict()
    sd["state"][0][key] = np.zeros_like(p)
    sd["param_groups"][0].update(switch)
    twin.load_state_dict(sd)
    opt.param_groups[0].update(switch)
    opt.step([grads[2]])
    twin.step([grads[2]])
    assert_optimizers_equal(opt, twin)
    new = opt.state[0][key]
    if value == "nonzero":  # buf = 0*mom + g/avg
        assert np.array_equal(new != 0, grads[2] != 0)
    elif value == "exp_avg_var":
        assert_bitwise_equal(new, opt.state[0]["exp_avg_var"])
    else:
        assert_bitwise_equal(new, np.float64(1 - 0.99) * grads[2])
    opt.step([grads[3]])
    assert opt.state[0]["step"] == 4


# ---- threads ---------------------------------------------------------------------------

def _job(seed):
    rng = np.random.default_rng(seed)
    cls_name = list(CLASSES)[seed % 4]
    dtype = (np.float32, np.float64)[seed % 2]
    shapes = [(PARALLEL_MIN + 100 * seed,), (13 + seed,), (3, 5)]
    params = [random_values(rng, s, dtype) for s in shapes]
    grads = [[random_values(rng, s, dtype) for s in shapes] for _ in range(4)]
    options = dict(FULL[cls_name], n_threads=1 + seed % 3)
    return cls_name, params, options, grads


def _run_job(cls_name, params, options, grads, impl, barrier=None):
    opt = CLASSES[cls_name](copies(params), **options, impl=impl)
    if barrier is not None:
        barrier.wait()
    for gs in grads:
        opt.step(gs)
    return opt


@impls
def test_eight_threads_equal_sequential(impl):
    jobs = [_job(seed) for seed in range(8)]
    sequential = [_run_job(*job, impl) for job in jobs]
    results, errors = [None] * 8, []
    barrier = threading.Barrier(8)

    def work(k):
        try:
            results[k] = _run_job(*jobs[k], impl, barrier)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=work, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for a, b in zip(results, sequential):
        assert_optimizers_equal(a, b)


@requires_kernel
@classes
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_n_threads_do_not_change_results(cls_name, dtype):
    rng = np.random.default_rng(20)
    params = [random_values(rng, (3 * PARALLEL_MIN + 17,), dtype),
              random_values(rng, (5, 7), dtype)]
    grads = [grads_for(params, rng) for _ in range(3)]
    opts = []
    for n_threads in (1, 2, None, -1):
        opt = make(cls_name, copies(params), "c", n_threads=n_threads)
        for gs in grads:
            opt.step(gs)
        opts.append(opt)
    for other in opts[1:]:
        assert_optimizers_equal(opts[0], other)
    numpy = make(cls_name, copies(params), "numpy")
    for gs in grads:
        numpy.step(gs)
    assert_optimizers_equal(opts[0], numpy)


@classes
def test_repr_names_options(cls_name):
    opt = CLASSES[cls_name]([np.zeros(2, np.float32)])
    text = repr(opt)
    assert text.startswith(f"{cls_name} (")
    for k in opt.defaults:
        assert f"    {k}: " in text
