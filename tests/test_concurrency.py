"""One optimizer used from many Python threads: nothing is lost.

The kernel runs without the GIL, so unserialised steps on one optimizer
would interleave on the same arrays (measured before the lock: 2 threads x
200 steps left a step count of 396-399). Every method that touches the state
holds the optimizer's ``lock``: N threads x K steps must equal N*K
sequential steps bit for bit, and a checkpoint taken meanwhile must be the
state after some number of those steps.
"""

import threading

import numpy as np
import pytest

import adamcore
from helpers import (
    EVERY_SLOT_OPTIONS,
    OPTIMIZERS,
    PARALLEL_MIN,
    assert_optimizer_snapshot_equal,
    bits,
    optimizer_snapshot,
    random_values,
    requires_kernel,
    run_in_threads,
)

pytestmark = requires_kernel

# Large enough that each step spends its time in the kernel without the GIL
# (two kernel threads: the parallel path), small enough for many steps.
SIZE = 2 * PARALLEL_MIN + 13


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    p0 = [random_values(rng, (SIZE,), np.float32), random_values(rng, (7, 5), np.float64)]
    grads = [random_values(rng, p.shape, p.dtype) for p in p0]
    return p0, grads


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
@pytest.mark.parametrize("n_workers, n_steps", [(2, 100), (8, 30), (16, 50)])
def test_threads_stepping_one_optimizer_equal_sequential_steps(name, n_workers, n_steps):
    cls = OPTIMIZERS[name]
    p0, grads = _problem()
    sequential = cls([p.copy() for p in p0], **EVERY_SLOT_OPTIONS[name], n_threads=2)
    for _ in range(n_workers * n_steps):
        sequential.step(grads)
    shared = cls([p.copy() for p in p0], **EVERY_SLOT_OPTIONS[name], n_threads=2)

    def work(_):
        for _ in range(n_steps):
            shared.step(grads)

    run_in_threads(n_workers, work)
    assert shared.state[0]["step"] == n_workers * n_steps
    assert_optimizer_snapshot_equal(optimizer_snapshot(shared), optimizer_snapshot(sequential))


def test_checkpoints_taken_while_threads_step_are_sequential_states(tmp_path):
    """A saver thread writes checkpoints and takes lock-held snapshots while
    four threads step: each is the state after exactly its step count of
    sequential steps (state arrays from ``save``, params too from the
    snapshot taken under ``opt.lock``)."""
    n_workers, n_steps, n_saves = 4, 25, 12
    p0, grads = _problem(1)
    reference = adamcore.Adam([p.copy() for p in p0], amsgrad=True, n_threads=2)
    after = {0: None}  # sequential step count -> (param bits, state bits)
    for k in range(1, n_workers * n_steps + 1):
        reference.step(grads)
        after[k] = optimizer_snapshot(reference)
    opt = adamcore.Adam([p.copy() for p in p0], amsgrad=True, n_threads=2)
    opt.step(grads)  # every checkpoint has state
    saved, snapshots = [], []

    def work(k):
        if k == n_workers:  # the saver
            for s in range(n_saves):
                path = tmp_path / f"ckpt{s}.npz"
                opt.save(path)
                saved.append(path)
                with opt.lock:
                    snapshots.append(optimizer_snapshot(opt))
            return
        for _ in range(n_steps - (k == 0)):  # the first step was taken above
            opt.step(grads)

    run_in_threads(n_workers + 1, work)
    for path in saved:
        restored = adamcore.Adam.load(path, [p.copy() for p in p0], n_threads=2)
        _, state = optimizer_snapshot(restored)
        k = state[0]["step"]
        assert_optimizer_snapshot_equal((after[k][0], state), after[k], what=f"{path.name}")
    for snap in snapshots:
        assert_optimizer_snapshot_equal(snap, after[snap[1][0]["step"]], what="snapshot")
    assert opt.state[0]["step"] == n_workers * n_steps
    assert_optimizer_snapshot_equal(optimizer_snapshot(opt), after[n_workers * n_steps])


def test_groups_added_while_threads_step():
    """``add_param_group`` from one thread while others step by identity
    (``apply_gradients``): the stepped param sees every step, the added ones
    none."""
    n_workers, n_steps, n_groups = 3, 40, 20
    p0, grads = _problem(2)
    reference = adamcore.Adam([p0[0].copy()], n_threads=2)
    for _ in range(n_workers * n_steps):
        reference.step(grads[0])
    param = p0[0].copy()
    opt = adamcore.Adam([param], n_threads=2)
    added = [np.full(5, float(k), np.float32) for k in range(n_groups)]

    def work(k):
        if k == n_workers:
            for a in added:
                opt.add_param_group({"params": [a], "lr": 0.5})
            return
        for _ in range(n_steps):
            opt.apply_gradients([(grads[0], param)])

    run_in_threads(n_workers + 1, work)
    assert len(opt.param_groups) == n_groups + 1
    assert list(opt.state) == [0]
    assert opt.state[0]["step"] == n_workers * n_steps
    np.testing.assert_array_equal(bits(param), bits(reference.param_groups[0]["params"][0]))
    for k, a in enumerate(added):
        np.testing.assert_array_equal(a, np.full(5, float(k), np.float32))


def _calls(opt, tmp_path):
    """Every call that must wait for the optimizer's lock, by name."""
    p = opt.param_groups[0]["params"][0]
    grad = np.ones_like(p)
    sd = opt.state_dict()
    cosine = adamcore.WarmupCosineLR(opt, warmup_steps=2, total_steps=10)
    plateau = adamcore.ReduceLROnPlateau(opt)
    return {
        "step": lambda: opt.step([grad]),
        "apply_gradients": lambda: opt.apply_gradients([(grad, p)]),
        "state[i]": lambda: opt.state[0],
        "state_dict": opt.state_dict,
        "load_state_dict": lambda: opt.load_state_dict(sd),
        "save": lambda: opt.save(tmp_path / "x.npz"),
        "add_param_group": lambda: opt.add_param_group({"params": [np.zeros(3, np.float32)]}),
        "schedule.step": cosine.step,
        "ReduceLROnPlateau.step": lambda: plateau.step(1.0),
    }


CALLS = ["step", "apply_gradients", "state[i]", "state_dict", "load_state_dict", "save",
         "add_param_group", "schedule.step", "ReduceLROnPlateau.step"]


@pytest.mark.parametrize("call", CALLS)
def test_each_call_waits_for_the_lock(call, tmp_path):
    """While another thread holds ``opt.lock``, the call does not run; it
    completes once the lock is released."""
    opt = adamcore.Adam([np.zeros(8, np.float32)])
    opt.step([np.ones(8, np.float32)])
    calls = _calls(opt, tmp_path)
    assert sorted(calls) == sorted(CALLS)
    done, errors = threading.Event(), []

    def other():
        try:
            calls[call]()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        done.set()

    with opt.lock:
        thread = threading.Thread(target=other)
        thread.start()
        assert not done.wait(0.2), f"{call} ran while another thread held opt.lock"
    thread.join(timeout=30)
    assert done.is_set() and not errors, errors


def test_schedule_steps_from_two_threads_are_two_epochs():
    """The epoch is read, applied and counted under the lock: two threads
    waiting on it apply epochs 1 and 2, never epoch 1 twice."""
    for make in (lambda o: adamcore.ExponentialLR(o, gamma=0.5),
                 lambda o: adamcore.ReduceLROnPlateau(o, factor=0.5, patience=0)):
        opt = adamcore.Adam([np.zeros(4, np.float32)], lr=1.0)
        sched = make(opt)
        call = sched.step if isinstance(sched, adamcore.ExponentialLR) else lambda: sched.step(1.0)
        with opt.lock:
            threads = [threading.Thread(target=call) for _ in range(2)]
            for t in threads:
                t.start()
            threading.Event().wait(0.1)
        for t in threads:
            t.join(timeout=30)
        assert sched.last_epoch == 2
        expected = 0.25 if isinstance(sched, adamcore.ExponentialLR) else 0.5
        assert opt.param_groups[0]["lr"] == expected


def test_an_optimizer_copy_has_its_own_lock():
    import copy
    import pickle

    opt = adamcore.Adam([np.zeros(4, np.float32)])
    opt.step([np.ones(4, np.float32)])
    for clone in (copy.deepcopy(opt), pickle.loads(pickle.dumps(opt))):
        assert clone.lock is not opt.lock
        with opt.lock:  # the clone does not wait for the original's lock
            clone.step([np.ones(4, np.float32)])
        assert clone.state[0]["step"] == 2
