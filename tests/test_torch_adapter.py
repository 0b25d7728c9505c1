"""adamcore.torch: torch.optim.Optimizer subclasses stepping through adamcore.

Checked: bitwise equality with the NumPy-array optimizer of the same kind
(the same kernel through zero-copy views), parity with torch.optim within
test_torch_parity's tolerances, torch's state_dict layout both ways through
torch.save / torch.load, torch's LR schedulers, refusals that modify
nothing, autograd's in-place check, threads and copies.
"""

import copy
import io
import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import adamcore  # noqa: E402
import adamcore.torch as at  # noqa: E402
from helpers import (  # noqa: E402
    DTYPES,
    EVERY_SLOT_OPTIONS,
    IMPL_PARAMS,
    OPTIMIZERS,
    PARALLEL_MIN,
    bits,
    random_values,
    run_in_threads,
)

TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-14)}
SHAPES = [(17,), (4, 33), (2 * PARALLEL_MIN + 5,)]
STEPS = 12
assert set(at.OPTIMIZERS) == set(OPTIMIZERS), "a new kind needs its adamcore.torch class"


def _values(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [random_values(rng, s, dtype) for s in SHAPES]


def _grad_steps(dtype, seed=1):
    """Per step a grad per param; params[1] skips step 3 (a None grad)."""
    rng = np.random.default_rng(seed)
    steps = [[random_values(rng, s, dtype) for s in SHAPES] for _ in range(STEPS)]
    steps[3][1] = None
    return steps


def _groups(params):
    return [{"params": params[:2]}, {"params": params[2:], "lr": 3e-3}]


def _set_grads(params, grads):
    for p, g in zip(params, grads):
        p.grad = None if g is None else torch.from_numpy(g.copy())


def _torch_params(values):
    return [torch.nn.Parameter(torch.from_numpy(v.copy())) for v in values]


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("name", sorted(at.OPTIMIZERS))
def test_equals_the_numpy_array_optimizer_bitwise(name, dtype, impl):
    options = EVERY_SLOT_OPTIONS[name]
    values = _values(dtype)
    arrays = [v.copy() for v in values]
    ref = OPTIMIZERS[name](_groups(arrays), **options, impl=impl)
    params = _torch_params(values)
    opt = at.OPTIMIZERS[name](_groups(params), **options, impl=impl)
    assert opt.impl == ref.impl
    for grads in _grad_steps(dtype):
        ref.step(grads)
        _set_grads(params, grads)
        opt.step()
    for i, (p, a) in enumerate(zip(params, arrays)):
        np.testing.assert_array_equal(bits(p.detach().numpy()), bits(a), err_msg=f"params[{i}]")
        state, expected = opt.state[p], ref.state[i]
        assert set(state) == set(expected) - ({"step"} if not opt.STEP_KEY else set())
        for key, t in state.items():
            if key == "step":
                assert t.dtype == torch.float32 and t.shape == () and int(t) == expected["step"]
            else:
                np.testing.assert_array_equal(bits(t.numpy()), bits(expected[key]),
                                              err_msg=f"state[{i}][{key!r}]")


# ---- against torch.optim ---------------------------------------------------------

TORCH_CASES = {
    "Adam": dict(lr=1e-2, amsgrad=True, weight_decay=0.1),
    "AdamW": dict(lr=1e-2, weight_decay=0.05),
    "SGD": dict(lr=1e-2, momentum=0.9, nesterov=True, weight_decay=1e-3),
    "RMSprop": dict(lr=1e-3, momentum=0.5, centered=True, weight_decay=0.1),
    "Adagrad": dict(lr=0.05, lr_decay=0.01, initial_accumulator_value=0.1),
}


def _model(dtype, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(),
                               torch.nn.Linear(16, 1)).to(dtype)


def _train(model, opt, steps, seed=2, scheduler=None):
    gen = torch.Generator().manual_seed(seed)
    dtype = next(model.parameters()).dtype
    for _ in range(steps):
        x = torch.randn(32, 6, generator=gen, dtype=dtype)
        y = torch.randn(32, 1, generator=gen, dtype=dtype)
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x), y).backward()
        opt.step()
        if scheduler is not None:
            scheduler.step()


def _assert_close(model_a, opt_a, model_b, opt_b, dtype):
    tol = TOL[dtype]
    for (name, a), b in zip(model_a.named_parameters(), model_b.parameters()):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), **tol, err_msg=name)
        sa, sb = opt_a.state[a], opt_b.state[b]
        assert set(sa) == {k for k, v in sb.items() if v is not None}, name
        for key in sa:
            np.testing.assert_allclose(sa[key].numpy(), sb[key].numpy(), **tol,
                                       err_msg=f"{name} {key}")


TORCH_DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]
_TORCH = {np.float32: torch.float32, np.float64: torch.float64}


@pytest.mark.parametrize("dtype", TORCH_DTYPES)
@pytest.mark.parametrize("cls", sorted(TORCH_CASES))
def test_matches_torch_optim_training_a_model(cls, dtype):
    ours, theirs = _model(_TORCH[dtype]), _model(_TORCH[dtype])
    opt = getattr(at, cls)(ours.parameters(), **TORCH_CASES[cls])
    ref = getattr(torch.optim, cls)(theirs.parameters(), **TORCH_CASES[cls])
    _train(ours, opt, 60)
    _train(theirs, ref, 60)
    _assert_close(ours, opt, theirs, ref, dtype)


@pytest.mark.parametrize("cls", sorted(TORCH_CASES))
def test_state_dicts_cross_between_adamcore_torch_and_torch_optim(cls):
    """Ours after 10 steps -> torch.save/torch.load -> (a) a fresh adapter
    continues bitwise as if it never stopped, (b) torch.optim continues within
    tolerance; torch.optim's state_dict loads into ours the same way."""
    options = TORCH_CASES[cls]
    straight = _model(torch.float32)
    straight_opt = getattr(at, cls)(straight.parameters(), **options)
    _train(straight, straight_opt, 20)

    first = _model(torch.float32)
    first_opt = getattr(at, cls)(first.parameters(), **options)
    _train(first, first_opt, 10)
    buffer = io.BytesIO()
    torch.save({"model": first.state_dict(), "opt": first_opt.state_dict()}, buffer)
    saved = lambda: torch.load(io.BytesIO(buffer.getvalue()))  # noqa: E731

    resumed = _model(torch.float32, seed=5)
    resumed.load_state_dict(saved()["model"])
    resumed_opt = getattr(at, cls)(resumed.parameters(), **options)
    resumed_opt.load_state_dict(saved()["opt"])
    _train(resumed, resumed_opt, 10, seed=3)
    first_then = _model(torch.float32)
    first_then.load_state_dict(saved()["model"])
    torch_opt = getattr(torch.optim, cls)(first_then.parameters(), **options)
    torch_opt.load_state_dict(saved()["opt"])
    _train(first_then, torch_opt, 10, seed=3)
    # the straight run saw seed 2's batches twice over; replay that instead
    again = _model(torch.float32)
    again_opt = getattr(at, cls)(again.parameters(), **options)
    _train(again, again_opt, 10)
    _train(again, again_opt, 10, seed=3)
    for a, b in zip(resumed.parameters(), again.parameters()):
        np.testing.assert_array_equal(bits(a.detach().numpy()), bits(b.detach().numpy()))
    _assert_close(resumed, resumed_opt, first_then, torch_opt, np.float32)

    # torch.optim -> ours
    t_model = _model(torch.float32)
    t_opt = getattr(torch.optim, cls)(t_model.parameters(), **options)
    _train(t_model, t_opt, 10)
    o_model = _model(torch.float32)
    o_model.load_state_dict(t_model.state_dict())
    o_opt = getattr(at, cls)(o_model.parameters(), **options)
    o_opt.load_state_dict(copy.deepcopy(t_opt.state_dict()))  # torch's holds live tensors
    _train(t_model, t_opt, 10, seed=3)
    _train(o_model, o_opt, 10, seed=3)
    _assert_close(o_model, o_opt, t_model, t_opt, np.float32)


def test_torch_lr_schedulers_drive_it(recwarn):
    ours, theirs = _model(torch.float64), _model(torch.float64)
    opt = at.AdamW(ours.parameters(), lr=1e-2)
    ref = torch.optim.AdamW(theirs.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=30)
    ref_sched = torch.optim.lr_scheduler.CosineAnnealingLR(ref, T_max=30)
    lrs, ref_lrs = [], []
    for _ in range(3):
        _train(ours, opt, 10, scheduler=sched)
        _train(theirs, ref, 10, scheduler=ref_sched)
        lrs.append(opt.param_groups[0]["lr"])
        ref_lrs.append(ref.param_groups[0]["lr"])
    assert lrs == ref_lrs and lrs[0] != 1e-2
    _assert_close(ours, opt, theirs, ref, np.float64)
    state = sched.state_dict()
    sched2 = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=30)
    sched2.load_state_dict(state)
    assert sched2.get_last_lr() == sched.get_last_lr()
    # torch warns when it thinks lr_scheduler.step() ran before optimizer.step()
    assert not [w for w in recwarn if "lr_scheduler" in str(w.message)]


def test_step_hooks_and_the_profiler_label_work():
    """step() skips torch's hook wrapper only while nothing would see it."""
    w = torch.nn.Parameter(torch.zeros(3))
    opt = at.Adam([w])
    seen = []
    pre = opt.register_step_pre_hook(lambda o, args, kwargs: seen.append("pre"))
    post = opt.register_step_post_hook(lambda o, args, kwargs: seen.append("post"))
    w.grad = torch.ones(3)
    opt.step()
    assert seen == ["pre", "post"]
    pre.remove()
    post.remove()
    opt.step()
    assert seen == ["pre", "post"] and int(opt.state[w]["step"]) == 2
    closures = []
    opt.register_step_pre_hook(lambda o, args, kwargs: closures.append((args, kwargs)))
    opt.step(closure=None)
    assert closures == [((opt,), {"closure": None})]  # as torch passes them
    with torch.profiler.profile() as prof:
        opt.step()
    assert any(e.name == "Optimizer.step#Adam.step" for e in prof.events())
    assert int(opt.state[w]["step"]) == 4


# ---- refusals ----------------------------------------------------------------------

def _inference_tensor():
    with torch.inference_mode():
        return torch.zeros(3)


BAD_PARAMS = {
    "meta-device": (lambda: torch.nn.Parameter(torch.zeros(3, device="meta")), ValueError,
                    r"params\[1\] is on meta"),
    "float16": (lambda: torch.nn.Parameter(torch.zeros(3, dtype=torch.float16)), TypeError,
                r"params\[1\] must have dtype torch.float32 or torch.float64"),
    "non-contiguous": (lambda: torch.nn.Parameter(torch.zeros(4, 3).t()), ValueError,
                       r"params\[1\] is not contiguous .* never steps a copy"),
    "sparse": (lambda: torch.zeros(3, 3).to_sparse(), TypeError, r"params\[1\] is a torch.sparse"),
    "inference": (_inference_tensor, ValueError, r"params\[1\] is an inference tensor"),
}


@pytest.mark.parametrize("case", sorted(BAD_PARAMS))
def test_a_param_that_cannot_be_updated_in_place_is_refused(case):
    make, error, match = BAD_PARAMS[case]
    good = torch.nn.Parameter(torch.zeros(3))
    with pytest.raises(error, match=match):
        at.Adam([good, make()])
    opt = at.Adam([good])
    with pytest.raises(error, match=match):
        opt.add_param_group({"params": [make()]})
    assert len(opt.param_groups) == 1


BAD_OPTIONS = {
    "lr": (dict(lr=-1.0), ValueError, "lr"),
    "betas": (dict(betas=(1.5, 0.9)), ValueError, "beta"),
    "capturable": (dict(capturable=True), ValueError, "capturable=True is not supported"),
    "differentiable": (dict(differentiable=True), ValueError, "differentiable=True"),
    "n_threads": (dict(n_threads=1.5), TypeError, "n_threads must be an integer"),
}


@pytest.mark.parametrize("case", sorted(BAD_OPTIONS))
def test_bad_options_are_refused(case):
    options, error, match = BAD_OPTIONS[case]
    with pytest.raises(error, match=match):
        at.Adam([torch.nn.Parameter(torch.zeros(3))], **options)


def _snapshot(opt):
    params = [bits(p.detach().numpy()).copy() for g in opt.param_groups for p in g["params"]]
    state = {id(p): {k: bits(t.numpy()).copy() for k, t in st.items()}
             for p, st in opt.state.items()}
    return params, state


def _assert_same(a, b):
    for x, y in zip(a[0], b[0]):
        np.testing.assert_array_equal(x, y)
    assert a[1].keys() == b[1].keys()
    for k in a[1]:
        assert a[1][k].keys() == b[1][k].keys()
        for key in a[1][k]:
            np.testing.assert_array_equal(a[1][k][key], b[1][k][key])


def _swap_grad_data(new):
    """A grad of another dtype or shape: torch refuses one set as ``.grad``,
    not one swapped in as ``.grad.data``."""
    def install(p):
        p.grad = torch.zeros_like(p)
        p.grad.data = new(p)
    return install


def _set(make):
    def install(p):
        p.grad = make(p)
    return install


BAD_GRADS = {
    "sparse": (_set(lambda p: torch.ones_like(p).to_sparse()), TypeError,
               r"params\[2\].grad is a torch.sparse"),
    "dtype": (_swap_grad_data(lambda p: torch.ones(p.shape, dtype=torch.float64)), ValueError,
              r"params\[2\].grad must be a torch.float32"),
    "shape": (_swap_grad_data(lambda p: torch.ones(p.numel() + 1)), ValueError,
              r"params\[2\].grad has shape"),
}


@pytest.mark.parametrize("case", sorted(BAD_GRADS))
def test_a_bad_grad_refuses_the_step_and_changes_nothing(case):
    install, error, match = BAD_GRADS[case]
    params = [torch.nn.Parameter(torch.randn(5)) for _ in range(3)] + [
        torch.nn.Parameter(torch.randn(4))]
    opt = at.Adam([{"params": params[:2]}, {"params": params[2:], "lr": 0.1}])
    for p in params[:3]:  # params[3] would step for the first time in the refused step
        p.grad = torch.ones_like(p)
    opt.step()
    before = _snapshot(opt)
    versions = [p._version for p in params]
    install(params[2])
    params[3].grad = torch.ones_like(params[3])
    with pytest.raises(error, match=match):
        opt.step()
    _assert_same(_snapshot(opt), before)
    assert [p._version for p in params] == versions
    assert not opt.state.get(params[3])


def test_a_bad_loaded_state_is_refused_and_the_old_state_kept():
    p = torch.nn.Parameter(torch.randn(6))
    opt = at.Adam([p])
    p.grad = torch.ones_like(p)
    opt.step()
    sd = opt.state_dict()
    bad = copy.deepcopy(sd)
    bad["state"][0]["exp_avg"] = torch.zeros(7)
    kept = opt.state[p]
    with pytest.raises(ValueError, match=r"state of params\[0\]\['exp_avg'\] must be"):
        opt.load_state_dict(bad)
    assert opt.state[p] is kept
    bad = copy.deepcopy(sd)
    bad["state"][0]["momentum"] = torch.zeros(6)
    with pytest.raises(ValueError, match="unknown keys"):
        opt.load_state_dict(bad)
    opt.step()
    assert int(opt.state[p]["step"]) == 2


def test_a_step_saved_as_a_number_loads_as_torch_does():
    p = torch.nn.Parameter(torch.randn(4))
    opt = at.Adam([p])
    p.grad = torch.ones_like(p)
    opt.step()
    sd = copy.deepcopy(opt.state_dict())
    sd["state"][0]["step"] = 1  # the format of torch releases before 1.12
    opt.load_state_dict(sd)
    assert opt.state[p]["step"].dtype == torch.float32
    opt.step()
    assert int(opt.state[p]["step"]) == 2


def _stepped_adam(n=1000, count=3):
    params = [torch.nn.Parameter(torch.zeros(n)) for _ in range(count)]
    opt = at.Adam(params)
    for p in params:
        p.grad = torch.ones(n)
    opt.step()
    return params, opt


MOVES = {  # ways a state tensor's memory moves while the tensor object stays
    "share_memory_": lambda t: t.share_memory_(),
    "data-clone": lambda t: setattr(t, "data", t.data.clone()),
}


@pytest.mark.parametrize("move", sorted(MOVES))
def test_state_whose_memory_moved_is_stepped_where_it_now_is(move):
    """A cached view must follow the tensor, never write to its old memory
    (freed after share_memory_(): a use after free)."""
    params, opt = _stepped_adam()
    ref_params, ref = _stepped_adam()
    for st in opt.state.values():
        for t in st.values():
            MOVES[move](t)
    for _ in range(5):
        opt.step()
        ref.step()
    for p, q in zip(params, ref_params):
        assert int(opt.state[p]["step"]) == 6
        np.testing.assert_array_equal(opt.state[p]["exp_avg"].numpy(), ref.state[q]["exp_avg"].numpy())
        np.testing.assert_array_equal(p.detach().numpy(), q.detach().numpy())


def test_a_param_made_non_contiguous_after_steps_is_refused():
    p = torch.nn.Parameter(torch.zeros(3, 3))
    opt = at.SGD([p], lr=1.0, momentum=0.9)
    p.grad = torch.zeros(3, 3)
    opt.step()
    p.data = p.data.t()  # the same address, now column-major
    p.grad = torch.zeros(3, 3).t()
    with pytest.raises(ValueError, match=r"params\[0\] is not contiguous"):
        opt.step()


def test_a_load_post_hook_runs_only_for_a_state_that_was_taken():
    params, opt = _stepped_adam(count=1)
    seen = []
    opt.register_load_state_dict_post_hook(lambda o: seen.append(int(o.state[params[0]]["step"])))
    bad = copy.deepcopy(opt.state_dict())
    bad["state"][0]["exp_avg"] = torch.zeros(5)
    with pytest.raises(ValueError):
        opt.load_state_dict(bad)
    assert seen == []
    opt.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert seen == [1]


def test_params_that_leave_the_groups_are_released():
    import gc
    import weakref

    keep, old = torch.nn.Parameter(torch.zeros(4)), torch.nn.Parameter(torch.zeros(4))
    opt = at.Adam([keep, old])
    keep.grad, old.grad = torch.ones(4), torch.ones(4)
    opt.step()
    gone = weakref.ref(old)
    opt.param_groups[0]["params"] = [keep]
    opt.state.pop(old)
    del old
    opt.step()
    gc.collect()
    assert gone() is None


def test_overlapping_params_are_refused_at_construction():
    p = torch.nn.Parameter(torch.zeros(6))
    view = torch.nn.Parameter(p.data[2:])  # shares p's memory
    with pytest.raises(ValueError, match="overlap"):
        at.Adam([p, view])


def test_a_non_contiguous_grad_is_read_through_a_copy():
    a, b = torch.nn.Parameter(torch.randn(4, 3)), torch.nn.Parameter(torch.randn(4, 3))
    b.data.copy_(a.data)
    g = torch.randn(3, 4)
    oa, ob = at.Adam([a]), at.Adam([b])
    a.grad, b.grad = g.t(), g.t().contiguous()
    assert not a.grad.is_contiguous()
    oa.step()
    ob.step()
    np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


def test_autograd_still_sees_the_in_place_update():
    """As with torch.optim: a backward through a graph that saved a param
    before the step raises, because the step bumps the version counter."""
    for cls in (torch.optim.Adam, at.Adam):
        w = torch.nn.Parameter(torch.randn(3))
        opt = cls([w])
        loss = (w * w).sum()  # saves w for backward
        w.grad = torch.ones(3)
        opt.step()
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            loss.backward()


def test_a_subclass_overriding_step_runs_each_hook_once():
    class Logged(at.Adam):
        def step(self, closure=None):
            return super().step(closure)

    w = torch.nn.Parameter(torch.zeros(3))
    opt = Logged([w])
    seen = []
    opt.register_step_pre_hook(lambda o, args, kwargs: seen.append("pre"))
    w.grad = torch.ones(3)
    opt.step()
    assert seen == ["pre"] and int(opt.state[w]["step"]) == 1


def test_named_parameters_and_closure():
    model = _model(torch.float32)
    opt = at.Adam(model.named_parameters(), lr=1e-2)
    assert opt.param_groups[0]["param_names"][0] == "0.weight"
    x, y = torch.randn(8, 6), torch.randn(8, 1)

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    first = opt.step(closure)
    for _ in range(20):
        last = opt.step(closure)
    assert last < first


# ---- threads and copies --------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(at.OPTIMIZERS))
def test_threads_stepping_one_optimizer_equal_sequential_steps(name):
    n_workers, n_steps = 4, 25
    cls, options = at.OPTIMIZERS[name], EVERY_SLOT_OPTIONS[name]
    values = _values(np.float32, seed=4)
    grads = _grad_steps(np.float32)[0]
    seq_params = _torch_params(values)
    seq = cls(seq_params, **options, n_threads=2)
    _set_grads(seq_params, grads)
    for _ in range(n_workers * n_steps):
        seq.step()
    params = _torch_params(values)
    opt = cls(params, **options, n_threads=2)
    _set_grads(params, grads)

    def work(_):
        for _ in range(n_steps):
            opt.step()

    run_in_threads(n_workers, work)
    for p, q in zip(params, seq_params):
        if opt.STEP_KEY:
            assert int(opt.state[p]["step"]) == n_workers * n_steps
        np.testing.assert_array_equal(bits(p.detach().numpy()), bits(q.detach().numpy()))
        for key in opt.state[p]:
            np.testing.assert_array_equal(opt.state[p][key].numpy(), seq.state[q][key].numpy())


def test_copies_step_on_their_own_tensors():
    params = _torch_params(_values(np.float64)[:2])
    opt = at.RMSprop(params, momentum=0.9, n_threads=1)
    _set_grads(params, _grad_steps(np.float64)[0][:2])
    opt.step()
    for clone in (copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))):
        assert clone.lock is not opt.lock and clone.n_threads == 1
        clone_params = [p for g in clone.param_groups for p in g["params"]]
        _set_grads(clone_params, _grad_steps(np.float64)[1][:2])
        clone.step()
        assert int(clone.state[clone_params[0]]["step"]) == 2
    assert int(opt.state[params[0]]["step"]) == 1


def test_import_adamcore_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, adamcore; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert adamcore.torch is at
