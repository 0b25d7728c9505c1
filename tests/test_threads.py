"""Threads: Python threads stepping concurrently, the GIL released during a step,
and results that never depend on n_threads."""

import sys
import threading

import numpy as np
import pytest

import adamcore
from helpers import (
    PARALLEL_MIN,
    assert_optimizer_snapshot_equal,
    assert_optimizers_equal,
    optimizer_snapshot,
    random_values,
    requires_kernel,
    run_in_threads,
)

pytestmark = requires_kernel


def make_job(seed):
    """One optimizer's worth of work: params, options and a grad sequence."""
    rng = np.random.default_rng(seed)
    dtype = (np.float32, np.float64)[seed % 2]
    big = PARALLEL_MIN * (1 + seed % 3) + 17 * seed
    shapes = [(big,), (13 + seed,), (3, 5 + seed)] if seed % 4 != 3 else [(29,), (1,)]
    params = [random_values(rng, s, dtype) for s in shapes]
    options = dict(lr=0.01 * (1 + seed), amsgrad=bool(seed % 2), weight_decay=0.1 * (seed % 3),
                   decoupled_weight_decay=seed % 4 == 0, maximize=seed % 5 == 1,
                   n_threads=1 + seed % 3)
    grads = [[random_values(rng, s, dtype) for s in shapes] for _ in range(4)]
    return params, options, grads


def run_job(params, options, grads):
    opt = adamcore.Adam(params, impl="c", **options)
    for g in grads:
        opt.step(g)
    return opt


@pytest.mark.parametrize("n_workers", [4, 8])
def test_concurrent_optimizers_equal_sequential(n_workers):
    jobs = [make_job(seed) for seed in range(n_workers)]
    sequential = [run_job([p.copy() for p in params], options, grads)
                  for params, options, grads in jobs]
    results = [None] * n_workers

    def work(k):
        params, options, grads = jobs[k]
        results[k] = run_job([p.copy() for p in params], options, grads)

    run_in_threads(n_workers, work)
    for k in range(n_workers):
        assert_optimizers_equal(results[k], sequential[k])


def test_concurrent_steps_on_one_shared_read_only_grad():
    """Threads may read the same grad array at once (grads are never written)."""
    rng = np.random.default_rng(0)
    g = random_values(rng, (3 * PARALLEL_MIN,), np.float32)
    g.flags.writeable = False
    p0 = random_values(rng, g.shape, np.float32)
    expected = p0.copy()
    adamcore.Adam([expected], impl="c").step(g)
    outs = [p0.copy() for _ in range(6)]
    run_in_threads(len(outs), lambda k: adamcore.Adam([outs[k]], impl="c", n_threads=2).step(g))
    for p in outs:
        np.testing.assert_array_equal(p.view(np.uint32), expected.view(np.uint32))


def test_gil_released_during_a_large_step():
    """While a thread is inside a long C step, another Python thread runs.

    The switch interval is raised so that the interpreter never takes the GIL
    from the stepping thread by force: the counting thread can only run if the
    step itself releases the GIL. No timing is asserted, only progress.
    """
    n = 2**24
    p = np.zeros(n, np.float32)
    g = np.ones(n, np.float32)
    opt = adamcore.Adam([p], impl="c")
    opt.step(g)  # allocate the state outside the measured region
    started, done = threading.Event(), threading.Event()
    errors = []

    def worker():
        try:
            started.set()
            for _ in range(4):
                opt.step(g)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            done.set()

    old = sys.getswitchinterval()
    sys.setswitchinterval(1000.0)
    try:
        thread = threading.Thread(target=worker)
        thread.start()
        started.wait()
        progress = 0
        while not done.is_set():
            progress += 1
            done.wait(0.0005)  # sleeps without the GIL, so the worker can take it back
        thread.join()
    finally:
        sys.setswitchinterval(old)
    assert not errors, errors
    assert opt.state[0]["step"] == 5
    assert progress > 0, "no Python progress while the C step ran: the GIL was held"


@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_results_independent_of_n_threads(dtype, amsgrad):
    rng = np.random.default_rng(1)
    shapes = [(5 * PARALLEL_MIN + 3,), (PARALLEL_MIN - 1,), (7,), (300, 301)]
    p0 = [random_values(rng, s, dtype) for s in shapes]
    grads = [[random_values(rng, s, dtype) for s in shapes] for _ in range(5)]
    opts = {}
    for n_threads in (1, 2, 3, -1, -2, None, 64):
        ps = [p.copy() for p in p0]
        opt = adamcore.Adam([{"params": ps[:2]}, {"params": ps[2:], "lr": 0.1}], lr=0.01,
                            amsgrad=amsgrad, weight_decay=0.1, n_threads=n_threads, impl="c")
        for g in grads:
            opt.step(g)
        opts[n_threads] = opt
    reference = adamcore.Adam([{"params": [p.copy() for p in p0[:2]]},
                               {"params": [p.copy() for p in p0[2:]], "lr": 0.1}], lr=0.01,
                              amsgrad=amsgrad, weight_decay=0.1, impl="numpy")
    for g in grads:
        reference.step(g)
    for n_threads, opt in opts.items():
        assert_optimizer_snapshot_equal(optimizer_snapshot(opt), optimizer_snapshot(reference),
                                        f"n_threads={n_threads}")
