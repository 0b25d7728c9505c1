"""What tests/test_distributed.py runs under mpiexec: ``python
tests/mpi_scenarios.py NAME [JSON]``. Each scenario checks itself on every
rank and exits non-zero (an AssertionError) when a check fails; the test
reads the exit code and the "PASS" lines.

The gradients of rank r at step t come from a counter-based generator seeded
by (seed, r, t), so any process can make any rank's: the single-process
reference steps on the rank-ordered sum of all P sets, ``((g_0 + g_1) + ...)
* dtype(1/P)``, and is compared with the sharded run bit for bit.
"""

import json
import os
import sys

import numpy as np
from mpi4py import MPI

import adamcore
from adamcore.distributed import ShardedOptimizer

COMM = MPI.COMM_WORLD
P, RANK = COMM.Get_size(), COMM.Get_rank()

SHAPES = {"w1": (37, 61), "b1": (61,), "w2": (61, 130), "b2": (130,), "empty": (0,),
          "big": (9001,), "tail": (5,)}
SMALL = {"a": (1500,), "b": (1400,)}  # fewer blocks than ranks: some shards are empty
GROUPS = [{"params": ["w1", "w2", "big"]},
          {"params": ["b1", "b2", "empty", "tail"], "weight_decay": 0.0, "lr": 3e-3}]
CLASSES = {c.__name__: c for c in (adamcore.Adam, adamcore.AdamW, adamcore.SGD,
                                   adamcore.RMSprop, adamcore.Adagrad, adamcore.AdaBelief)}
OPTIONS = {"Adam": {"lr": 1e-2, "weight_decay": 0.01}, "AdamW": {"lr": 1e-2},
           "SGD": {"lr": 0.05, "momentum": 0.9, "nesterov": True},
           "RMSprop": {"lr": 1e-3, "centered": True, "momentum": 0.5},
           "Adagrad": {"lr": 0.05}, "AdaBelief": {"lr": 1e-2}}


def initial(shapes, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(dtype) for k, s in shapes.items()}


def grads(n, dtype, rank, t, seed=1, nan_at=None):
    g = np.random.default_rng((seed, rank, t)).standard_normal(n).astype(dtype)
    if nan_at is not None and (rank, t) == tuple(nan_at):
        g[n // 2] = np.nan
    return g


def reduced(n, dtype, t, n_ranks, nan_at=None, average=True):
    total = grads(n, dtype, 0, t, nan_at=nan_at)
    for r in range(1, n_ranks):
        total = total + grads(n, dtype, r, t, nan_at=nan_at)
    return total * dtype.type(1 / n_ranks) if average else total


def reference_groups(fp, groups):
    if groups is None:
        return [{"params": [fp[k] for k in fp]}]
    return [{**{k: v for k, v in g.items() if k != "params"}, "params": [fp[k] for k in g["params"]]}
            for g in groups]


def order_of(fp, groups):
    return list(fp) if groups is None else [k for g in groups for k in g["params"]]


def same_bits(a, b):
    """Bitwise equal, except that any NaN equals any NaN (payloads may differ)."""
    nan = np.isnan(a)
    return (nan == np.isnan(b)).all() and a[~nan].tobytes() == b[~nan].tobytes()


def same_state(sd, ref_sd, what):
    assert sorted(sd["state"]) == sorted(ref_sd["state"]), (what, "state ids")
    for i, ref in ref_sd["state"].items():
        got = sd["state"][i]
        assert sorted(got) == sorted(ref), (what, i, sorted(got), sorted(ref))
        for k, a in ref.items():
            b = got[k]
            if k == "step":
                assert a == b, (what, i, a, b)
            else:
                assert a.dtype == b.dtype and a.shape == b.shape, (what, i, k)
                assert a.tobytes() == b.tobytes(), (what, i, k, "differs")
    assert sd["param_groups"] == ref_sd["param_groups"], (what, "groups")


def contract(case):
    """A sharded run against the single-process run on the reduced grads."""
    dtype = np.dtype(case.get("dtype", "float32"))
    cls = CLASSES[case.get("optimizer", "AdamW")]
    shapes = SMALL if case.get("small") else SHAPES
    groups = GROUPS if case.get("groups") and not case.get("small") else None
    options = {**OPTIONS[cls.__name__], **case.get("options", {})}
    extra = {k: case[k] for k in ("max_grad_norm", "skip_nonfinite") if k in case}
    steps, nan_at, average = case.get("steps", 12), case.get("nan_at"), case.get("average", True)
    fp = adamcore.FlatParams(initial(shapes, dtype), dtype)
    opt = ShardedOptimizer(cls, fp, groups=groups, stage=case.get("stage", 2), average=average,
                           bucket=case.get("bucket", 3000), n_threads=case.get("n_threads"),
                           impl=case.get("impl", "auto"), **extra, **options)
    ref_fp = adamcore.FlatParams(initial(shapes, dtype), dtype)
    ref = cls(reference_groups(ref_fp, groups), **extra, **options)
    schedule = ref_schedule = None
    if case.get("schedule"):
        schedule = adamcore.WarmupCosineLR(opt, warmup_steps=3, total_steps=steps)
        ref_schedule = adamcore.WarmupCosineLR(ref, warmup_steps=3, total_steps=steps)
    names = order_of(fp, groups)
    toggles = {4: True, 8: False} if case.get("toggle_amsgrad") else {}
    for t in range(steps):
        if t in toggles:  # a new state slot appears mid-run, then stops being used
            for o in (opt, ref):
                o.param_groups[0]["amsgrad"] = toggles[t]
        fp.flat_grad[...] = grads(fp.flat.size, dtype, RANK, t, nan_at=nan_at)
        stepped = opt.step()
        total = ref_fp.split(reduced(fp.flat.size, dtype, t, P, nan_at, average))
        assert stepped == ref.step([total[k].copy() for k in names]), (case, t, "stepped")
        if schedule:
            schedule.step()
            ref_schedule.step()
    assert fp.flat.tobytes() == ref_fp.flat.tobytes(), (case, "params differ")
    same_state(opt.state_dict(), ref.state_dict(), case)
    on_root = opt.state_dict(root=0)  # consolidated on rank 0 only
    if RANK == 0:
        same_state(on_root, ref.state_dict(), (case, "root"))
    else:
        assert on_root is None, case
    assert opt.last_grad_norm == ref.last_grad_norm, (case, opt.last_grad_norm, ref.last_grad_norm)
    assert opt.skipped_steps == ref.skipped_steps, case
    if opt.stage == 1 and P > 1:  # the full reduced grads of the last step, on every rank
        last = reduced(fp.flat.size, dtype, steps - 1, P, nan_at, average)
        assert same_bits(opt.reduced_grad, last), (case, "reduced_grad")
    return opt


def scenario_contract(cases):
    for case in cases:
        opt = contract(case)
        COMM.Barrier()
        if RANK == 0:
            print("PASS", json.dumps(case), "state bytes per rank:", opt.state_bytes, flush=True)


def run_steps(opt, fp, dtype, steps, first):
    for t in range(first, first + steps):
        fp.flat_grad[...] = grads(fp.flat.size, dtype, RANK, t)
        opt.step()


def scenario_save(args):
    """Run ``steps`` steps at this P and save."""
    dtype = np.dtype(args.get("dtype", "float32"))
    fp = adamcore.FlatParams(initial(SHAPES, dtype), dtype)
    opt = ShardedOptimizer(adamcore.AdamW, fp, groups=GROUPS, max_grad_norm=5.0, amsgrad=True,
                           **OPTIONS["AdamW"])
    run_steps(opt, fp, dtype, args["steps"], 0)
    opt.save(args["path"])
    if RANK == 0:
        np.save(args["params"], fp.flat)  # the checkpoint holds the optimizer, not the model
        print("PASS saved at", P, "ranks", flush=True)


def resume_reference(args, dtype):
    """One process that never stopped: ``saved_steps`` steps on the sums of
    ``saved_ranks`` gradient sets, then ``steps`` on the sums of P sets."""
    fp = adamcore.FlatParams(initial(SHAPES, dtype), dtype)
    ref = adamcore.AdamW(reference_groups(fp, GROUPS), max_grad_norm=5.0, amsgrad=True,
                         **OPTIONS["AdamW"])
    names = order_of(fp, GROUPS)
    plan = [(t, args["saved_ranks"]) for t in range(args["saved_steps"])]
    plan += [(t, P) for t in range(args["saved_steps"], args["saved_steps"] + args["steps"])]
    for t, n_ranks in plan:
        total = fp.split(reduced(fp.flat.size, dtype, t, n_ranks))
        ref.step([total[k].copy() for k in names])
    return fp, ref


def scenario_resume(args):
    """Load a checkpoint saved at another P (or by one process) and go on."""
    dtype = np.dtype(args.get("dtype", "float32"))
    fp = adamcore.FlatParams(initial(SHAPES, dtype, seed=99), dtype)  # overwritten below
    saved = np.load(args["params"])
    fp.flat[...] = saved
    opt = ShardedOptimizer.load(args["path"], adamcore.AdamW, fp, groups=GROUPS,
                                stage=args.get("stage", 2), max_grad_norm=5.0)
    run_steps(opt, fp, dtype, args["steps"], args["saved_steps"])
    ref_fp, ref = resume_reference(args, dtype)
    assert fp.flat.tobytes() == ref_fp.flat.tobytes(), "params differ from a run that never stopped"
    same_state(opt.state_dict(), ref.state_dict(), "resume")
    if RANK == 0:
        print("PASS resumed at", P, "ranks from a save at", args["saved_ranks"], flush=True)


def expect_error(kind, words, fn):
    try:
        fn()
    except kind as exc:
        for w in words:
            assert w in str(exc), (w, str(exc))
        return str(exc)
    raise AssertionError(f"expected {kind.__name__} with {words}")


def scenario_faults(_):
    """Refusals reach every rank, with nothing changed, and no rank hangs."""
    dtype = np.dtype(np.float32)
    last = P - 1
    # Construction: one rank's params differ in shape, one rank's option is bad.
    shapes = dict(SHAPES, big=(9000,)) if RANK == last and P > 1 else SHAPES
    fp = adamcore.FlatParams(initial(shapes, dtype), dtype)
    if P > 1:
        expect_error(ValueError, ["ranks disagree on shapes", f"rank {last}"],
                     lambda: ShardedOptimizer(adamcore.Adam, fp, lr=1e-3))
        lr = -1.0 if RANK == last else 1e-3
        fp = adamcore.FlatParams(initial(SHAPES, dtype), dtype)
        expect_error(ValueError, [f"rank {last} of {P}", "lr"],
                     lambda: ShardedOptimizer(adamcore.Adam, fp, lr=lr))
        expect_error(ValueError, ["ranks disagree on options"],
                     lambda: ShardedOptimizer(adamcore.Adam, fp, lr=1e-3 * (RANK + 1)))
    fp = adamcore.FlatParams(initial(SHAPES, dtype), dtype)
    opt = ShardedOptimizer(adamcore.AdamW, fp, groups=GROUPS, max_grad_norm=1.0,
                           **OPTIONS["AdamW"])
    run_steps(opt, fp, dtype, 3, 0)
    before, sd_before = fp.flat.copy(), opt.state_dict()
    # A step: one rank's grad has the wrong dtype or size, or overlaps the params.
    bad = [grads(fp.flat.size, np.dtype(np.float64), RANK, 0), np.zeros(7, dtype), fp.flat]
    for g in bad:
        mine = g if RANK == last else fp.flat_grad
        expect_error((TypeError, ValueError), ["step refused", f"rank {last} of {P}"],
                     lambda: opt.step(mine))
    # A schedule's bad lr on one rank only.
    if RANK == last:
        opt.param_groups[0]["lr"] = float("nan")
    expect_error(ValueError, ["step refused", "lr"], lambda: opt.step())
    opt.param_groups[0]["lr"] = OPTIONS["AdamW"]["lr"]
    assert fp.flat.tobytes() == before.tobytes(), "a refused step changed the params"
    same_state(opt.state_dict(), sd_before, "refused steps changed the state")
    # load_state_dict: one rank's copy is damaged.
    damaged = opt.state_dict()
    if RANK == last:
        damaged["state"][0]["exp_avg"] = damaged["state"][0]["exp_avg"][:3]
    expect_error(ValueError, ["load_state_dict refused", f"rank {last}"],
                 lambda: opt.load_state_dict(damaged))
    same_state(opt.state_dict(), sd_before, "a refused load changed the state")
    # A damaged group or state on one rank: refused everywhere (no hang).
    for damage in ("group without params", "state not a dict"):
        broken = opt.state_dict()
        if RANK == last:
            if damage == "group without params":
                del broken["param_groups"][0]["params"]
            else:
                broken["state"] = list(broken["state"].values())
        expect_error(ValueError, ["load_state_dict refused", f"rank {last}"],
                     lambda: opt.load_state_dict(broken))
    # Another state_dict on one rank: the ranks disagree, refused everywhere.
    other = opt.state_dict()
    if RANK == last and P > 1:
        other["state"][0]["step"] += 7
    if P > 1:
        expect_error(ValueError, ["the ranks disagree on the state_dict's contents"],
                     lambda: opt.load_state_dict(other))
    # An option deleted on one rank (a KeyError there), or another lr on one rank.
    if RANK == last:
        del opt.param_groups[1]["eps"]
    expect_error(KeyError, ["step refused", f"rank {last}"], lambda: opt.step())
    opt.param_groups[1]["eps"] = 1e-8
    if P > 1:
        opt.param_groups[0]["lr"] = 0.5 if RANK == last else OPTIONS["AdamW"]["lr"]
        expect_error(ValueError, ["the ranks disagree on the param groups' options"],
                     lambda: opt.step())
        opt.param_groups[0]["lr"] = OPTIONS["AdamW"]["lr"]
        opt.max_grad_norm = 2.0 if RANK == last else 1.0
        expect_error(ValueError, ["disagree", "max_grad_norm"], lambda: opt.step())
        opt.max_grad_norm = 1.0
        # Params initialised differently on one rank: refused at construction.
        init = initial(SHAPES, dtype, seed=RANK if RANK == last else 0)
        expect_error(ValueError, ["params' values differ", f"rank {last}"],
                     lambda: ShardedOptimizer(adamcore.AdamW, adamcore.FlatParams(init, dtype),
                                              lr=1e-3))
    assert fp.flat.tobytes() == before.tobytes(), "a refused step changed the params"
    same_state(opt.state_dict(), sd_before, "refused calls changed the state")
    # A count with no next one, loaded on every rank: the step is refused on
    # every rank, not by the kernel of the ranks that hold that param.
    full = opt.state_dict()
    full["state"][0]["step"] = 2 ** 63 - 1
    opt.load_state_dict(full)
    expect_error(ValueError, ["2**63 - 1 steps"], lambda: opt.step())
    opt.load_state_dict(sd_before)
    if P > 1:  # state_dict gathering to different roots on different ranks
        expect_error(ValueError, ["disagree on root"], lambda: opt.state_dict(root=RANK))
    # The same lr as another type on one rank is the same lr.
    opt.param_groups[0]["lr"] = np.float64(OPTIONS["AdamW"]["lr"]) if RANK == last else \
        OPTIONS["AdamW"]["lr"]
    # A key that is not an option (torch users add "name"s) changes nothing.
    opt.param_groups[0]["name"] = "weights"
    # The optimizer still steps in step with the reference.
    run_steps(opt, fp, dtype, 2, 3)
    ref_fp = adamcore.FlatParams(initial(SHAPES, dtype), dtype)
    ref = adamcore.AdamW(reference_groups(ref_fp, GROUPS), max_grad_norm=1.0, **OPTIONS["AdamW"])
    names = order_of(ref_fp, GROUPS)
    for t in range(5):
        total = ref_fp.split(reduced(fp.flat.size, dtype, t, P))
        ref.step([total[k].copy() for k in names])
    assert fp.flat.tobytes() == ref_fp.flat.tobytes(), "steps after refusals differ"
    # A checkpoint that cannot be read is refused on every rank.
    expect_error(FileNotFoundError, ["load", "rank 0"],
                 lambda: ShardedOptimizer.load("/nonexistent/x.npz", adamcore.AdamW, fp))
    if RANK == 0:
        print("PASS faults", flush=True)


def scenario_threads(_):
    """Two sharded optimizers stepped from two threads at once: each has its
    own communicator, so their collectives cannot cross."""
    import threading
    dtype = np.dtype(np.float32)
    runs = []
    for seed in (0, 5):
        fp = adamcore.FlatParams(initial(SHAPES, dtype, seed=seed), dtype)
        runs.append((fp, ShardedOptimizer(adamcore.AdamW, fp, max_grad_norm=1.0,
                                          **OPTIONS["AdamW"])))
    threads = [threading.Thread(target=run_steps, args=(opt, fp, dtype, 6, 0))
               for fp, opt in runs]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    for seed, (fp, opt) in zip((0, 5), runs):
        ref_fp = adamcore.FlatParams(initial(SHAPES, dtype, seed=seed), dtype)
        ref = adamcore.AdamW(reference_groups(ref_fp, None), max_grad_norm=1.0,
                             **OPTIONS["AdamW"])
        for t in range(6):
            total = ref_fp.split(reduced(fp.flat.size, dtype, t, P))
            ref.step([total[k].copy() for k in ref_fp])
        assert fp.flat.tobytes() == ref_fp.flat.tobytes(), "threads: params differ"
    if RANK == 0:
        print("PASS threads", flush=True)


def scenario_die(args):
    """One rank leaves mid-run (os._exit or an exception): the launch must
    end, not hang; the test only checks that it ends, non-zero."""
    fp = adamcore.FlatParams(initial(SHAPES, np.dtype(np.float32)))
    opt = ShardedOptimizer(adamcore.AdamW, fp, lr=1e-3)
    for t in range(50):
        if RANK == P - 1 and t == 3:
            if args["how"] == "exit":
                os._exit(3)
            raise RuntimeError("rank failed mid-run (on purpose)")
        fp.flat_grad[...] = grads(fp.flat.size, np.dtype(np.float32), RANK, t)
        opt.step()


def scenario_memory(args):
    """What a rank allocates for the sharded optimizer and its steps
    (tracemalloc sees NumPy's buffers): its shard of the state, its shard
    of the reduced grads (all of them at stage 1) and one P x bucket receive
    buffer, not the P x shard a one-shot Alltoall would need."""
    import tracemalloc
    n, bucket, stage = args["n"], args["bucket"], args["stage"]
    fp = adamcore.FlatParams([(n,)])
    fp.flat_grad[...] = 1.0
    tracemalloc.start()
    opt = ShardedOptimizer(adamcore.Adam, fp, stage=stage, bucket=bucket, lr=1e-3)
    for _ in range(2):
        opt.step()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    lo, hi = opt.shard
    shard_bytes = (hi - lo) * 4
    expected = 2 * shard_bytes  # one rank: no exchange, the grads are the reduced grads
    if P > 1:
        expected += (n * 4 if stage == 1 else shard_bytes) + P * bucket * 4
    assert opt.state_bytes == 2 * shard_bytes
    assert expected <= peak <= expected + (1 << 20), (peak, expected)
    if P > 1:  # far below what one Alltoall of whole shards would receive
        assert peak < expected - P * bucket * 4 + P * shard_bytes
    # Loading copies only this rank's pieces, whether the global state comes
    # as a state_dict on every rank or from a file that rank 0 reads.
    sd = opt.state_dict()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    opt.load_state_dict(sd)
    extra = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    assert extra <= 2 * shard_bytes + (1 << 20), ("load_state_dict", extra, shard_bytes)
    del sd
    opt.save(args["path"])
    tracemalloc.start()
    again = ShardedOptimizer.load(args["path"], adamcore.Adam, fp, stage=stage, bucket=bucket)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert again.state_bytes == opt.state_bytes
    if RANK != 0:  # rank 0 reads the whole file; the others get their shards only
        assert peak <= expected + 2 * shard_bytes + (1 << 20), ("load", peak, expected)
    COMM.Barrier()
    if RANK == 0:
        print("PASS memory", peak, expected, flush=True)


SCENARIOS = {"threads": scenario_threads, "memory": scenario_memory, "contract": scenario_contract, "save": scenario_save, "resume": scenario_resume,
             "faults": scenario_faults, "die": scenario_die}

if __name__ == "__main__":
    SCENARIOS[sys.argv[1]](json.loads(sys.argv[2]) if len(sys.argv) > 2 else None)
