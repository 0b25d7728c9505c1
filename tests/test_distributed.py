"""adamcore.distributed: the layout and the ordered sum (no MPI), the sharded
optimizer in this process (COMM_SELF), and runs under ``mpiexec`` at 2, 3
and 4 ranks (tests/mpi_scenarios.py), each under a timeout so that a hang
fails instead of stalling the suite. Without mpi4py (the ``mpi`` extra) the
MPI tests skip; CI installs it."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import adamcore
from adamcore import _impl, reference
from adamcore.distributed import ShardLayout
from adamcore.reference import NORM_BLOCK

from helpers import IMPL_PARAMS

SCENARIOS = Path(__file__).with_name("mpi_scenarios.py")
TIMEOUT = 240  # seconds per launch; 4 ranks on 2 cores take a few seconds

try:
    from mpi4py import MPI
except ImportError:
    MPI = None
MPIEXEC = shutil.which("mpiexec", path=os.path.dirname(sys.executable) + os.pathsep
                       + os.environ.get("PATH", ""))
needs_mpi = pytest.mark.skipif(MPI is None or MPIEXEC is None,
                               reason="mpi4py and mpiexec: pip install 'adamcore[mpi]'")


# ---- the layout ---------------------------------------------------------------

def spans_of(sizes):
    out, start = [], 0
    for n in sizes:
        out.append((start, n))
        start += n
    return out


@settings(max_examples=200, deadline=None)
@given(sizes=st.lists(st.integers(0, 9000), min_size=1, max_size=6),
       n_ranks=st.integers(1, 7), itemsize=st.sampled_from([4, 8]),
       order=st.randoms(use_true_random=False))
def test_layout_cuts_on_blocks_and_covers_once(sizes, n_ranks, itemsize, order):
    spans = spans_of(sizes)
    order.shuffle(spans)  # the optimizer's order need not be the buffer's
    n = sum(sizes)
    layout = ShardLayout.build(spans, n, n_ranks, itemsize)
    assert layout.bounds[0] == 0 and layout.bounds[-1] == n
    assert list(layout.bounds) == sorted(layout.bounds)
    starts = {s for s, _ in spans}
    for cut in layout.bounds[1:-1]:
        owner = [(s, size) for s, size in spans if s <= cut < s + size]
        assert cut == n or cut in starts or (cut - owner[0][0]) % NORM_BLOCK == 0
    covered = np.zeros(n, int)
    for r in range(n_ranks):
        lo, hi = layout.shard(r)
        for piece in layout.pieces(r):
            start, size = spans[piece.param]
            assert 0 <= piece.lo < piece.hi <= size and piece.flat == start + piece.lo
            assert lo <= piece.flat and piece.flat + piece.size <= hi
            assert piece.lo % NORM_BLOCK == 0
            covered[piece.flat:piece.flat + piece.size] += 1
    assert (covered == 1).all()


def test_layout_balances_and_aligns():
    layout = ShardLayout.build([(0, 1 << 22)], 1 << 22, 4, 4)
    assert layout.bounds == (0, 1 << 20, 2 << 20, 3 << 20, 4 << 20)
    layout = ShardLayout.build(spans_of([1008, 100_001, 7]), 101_016, 3, 4)
    lengths = np.diff(layout.bounds)
    assert lengths.max() - lengths.min() <= 2 * NORM_BLOCK
    assert all(b * 4 % 64 == 0 for b in layout.bounds[:-1])  # 1008 floats: on a line
    # A param off a line has no cut that is both on a block edge and on a line.
    layout = ShardLayout.build(spans_of([1000, 100_001, 7]), 101_008, 3, 4)
    assert all((b - 1000) % NORM_BLOCK == 0 for b in layout.bounds[1:-1])


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(0, 7000), min_size=1, max_size=5),
       n_ranks=st.integers(1, 5), seed=st.integers(0, 2**32 - 1))
def test_fold_order_is_the_single_process_block_order(sizes, n_ranks, seed):
    """Block sums taken piece by piece on each rank, concatenated in rank
    order and put in fold_order, are the single-process norm's block sums."""
    rng = np.random.default_rng(seed)
    spans = spans_of(sizes)[::-1]  # optimizer order: reversed buffer order
    flat = rng.standard_normal(sum(sizes)).astype(np.float32)
    arrays = [flat[s:s + n] for s, n in spans]
    layout = ShardLayout.build(spans, flat.size, n_ranks, 4)
    gathered = [reference.grad_block_sums([flat[p.flat:p.flat + p.size]])[0]
                for r in range(n_ranks) for p in layout.pieces(r)]
    gathered = np.concatenate(gathered) if gathered else np.zeros(0)
    expected, _ = reference.grad_block_sums(arrays)
    assert gathered[layout.fold_order()].tobytes() == expected.tobytes()


# ---- the ordered sum and the block sums ---------------------------------------

@settings(max_examples=80, deadline=None)
@given(n_ranks=st.integers(1, 6), n=st.integers(0, 40_000), spare=st.integers(0, 50),
       dtype=st.sampled_from([np.float32, np.float64]),
       scale=st.sampled_from([1.0, 0.5, 1 / 3, 0.25, 1 / 6]), n_threads=st.integers(1, 3),
       seed=st.integers(0, 2**32 - 1))
def test_rank_sum_is_the_rank_ordered_sum(n_ranks, n, spare, dtype, scale, n_threads, seed):
    if _impl.kernel() is None:
        pytest.skip("the C kernel is not built")
    rng = np.random.default_rng(seed)
    recv = (rng.standard_normal((n_ranks, n + spare)) * 10.0 ** rng.integers(-3, 4, n + spare)
            ).astype(dtype)
    out_c, out_np = np.full(n, np.nan, dtype), np.full(n, np.nan, dtype)
    _impl.kernel().rank_sum(recv, out_c, scale, n_threads)
    reference.rank_sum(recv, out_np, scale)
    naive = recv[0, :n].copy()
    for r in range(1, n_ranks):
        naive = naive + recv[r, :n]
    naive = naive * dtype(scale) if scale != 1.0 else naive
    assert out_c.tobytes() == out_np.tobytes() == naive.tobytes()


def test_rank_sum_refuses_bad_buffers():
    kernel = _impl.kernel()
    if kernel is None:
        pytest.skip("the C kernel is not built")
    recv = np.zeros((2, 8), np.float32)
    with pytest.raises(TypeError, match="out must be"):
        kernel.rank_sum(recv, np.zeros(8, np.float64), 1.0)
    with pytest.raises(ValueError, match="recv's rows have 8"):
        kernel.rank_sum(recv, np.zeros(9, np.float32), 1.0)
    with pytest.raises(ValueError, match="overlaps"):
        kernel.rank_sum(recv, recv[1], 1.0)
    with pytest.raises(TypeError, match="recv must be"):
        kernel.rank_sum(np.zeros(8, np.float32), np.zeros(8, np.float32), 1.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_block_sums_match_and_fold_to_the_norm(dtype):
    rng = np.random.default_rng(3)
    arrays = [rng.standard_normal(n).astype(dtype) for n in (1, 2048, 2049, 10_000, 0)]
    sums, bad = reference.grad_block_sums(arrays)
    if _impl.kernel() is not None:
        c_sums, c_bad = _impl.kernel().grad_block_sums(arrays, 2)
        assert c_sums.tobytes() == sums.tobytes() and c_bad == bad is False
    assert reference.fold_block_sums(sums) == reference.grad_sumsq(arrays)[0]
    assert float(np.add.accumulate(sums)[-1]) == reference.fold_block_sums(sums)
    arrays[2][5] = np.inf
    assert reference.grad_block_sums(arrays)[1] is True


# ---- in this process --------------------------------------------------------------

def test_import_adamcore_does_not_import_mpi4py():
    code = ("import sys, adamcore, adamcore.distributed; "
            "assert 'mpi4py' not in sys.modules, 'mpi4py imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.fixture
def fp():
    rng = np.random.default_rng(0)
    return adamcore.FlatParams({"w": rng.standard_normal((40, 70)).astype(np.float32),
                                "b": rng.standard_normal(70).astype(np.float32)})


def sharded(fp, **kwargs):
    from adamcore.distributed import ShardedOptimizer
    return ShardedOptimizer(kwargs.pop("cls", adamcore.AdamW), fp, MPI.COMM_SELF,
                            **{"lr": 1e-2, **kwargs})


@needs_mpi
@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("stage", [1, 2])
def test_one_rank_is_the_single_process_optimizer(fp, impl, stage):
    groups = [{"params": ["w"]}, {"params": ["b"], "weight_decay": 0.0}]
    opt = sharded(fp, groups=groups, stage=stage, impl=impl, max_grad_norm=0.5, amsgrad=True)
    ref_fp = adamcore.FlatParams({k: fp[k].copy() for k in fp})
    ref = adamcore.AdamW([{"params": [ref_fp["w"]]},
                          {"params": [ref_fp["b"]], "weight_decay": 0.0}],
                         lr=1e-2, max_grad_norm=0.5, amsgrad=True, impl=impl)
    sched = adamcore.StepLR(opt, step_size=2, gamma=0.5)
    ref_sched = adamcore.StepLR(ref, step_size=2, gamma=0.5)
    rng = np.random.default_rng(1)
    for _ in range(6):
        fp.flat_grad[...] = rng.standard_normal(fp.flat.size)
        opt.step()
        ref.step([fp.grad("w").copy(), fp.grad("b").copy()])
        sched.step()
        ref_sched.step()
    assert fp.flat.tobytes() == ref_fp.flat.tobytes()
    sd, ref_sd = opt.state_dict(), ref.state_dict()
    assert sd["param_groups"] == ref_sd["param_groups"]
    for i in ref_sd["state"]:
        for k, a in ref_sd["state"][i].items():
            assert np.asarray(sd["state"][i][k]).tobytes() == np.asarray(a).tobytes()
    assert opt.state_bytes == 3 * fp.flat.nbytes


@needs_mpi
def test_state_dict_round_trip_and_checkpoint_cross_loads(fp, tmp_path):
    opt = sharded(fp)
    rng = np.random.default_rng(2)
    for _ in range(3):
        fp.flat_grad[...] = rng.standard_normal(fp.flat.size)
        opt.step()
    path = tmp_path / "sharded.npz"
    opt.save(path)
    single = adamcore.AdamW.load(path, [fp["w"], fp["b"]])  # a single process reads it
    again = sharded(fp)
    again.load_state_dict(single.state_dict())               # and a sharded one its state
    g = rng.standard_normal(fp.flat.size).astype(np.float32)
    saved = fp.flat.copy()
    single.step([g[:2800].reshape(40, 70), g[2800:]])
    after_single = fp.flat.copy()
    fp.flat[...] = saved
    again.step(g)
    assert fp.flat.tobytes() == after_single.tobytes()
    from adamcore.distributed import ShardedOptimizer
    loaded = ShardedOptimizer.load(path, adamcore.AdamW, fp, MPI.COMM_SELF)
    assert loaded.state_dict()["state"][0]["step"] == 3


@needs_mpi
def test_bad_arguments_are_refused_naming_them(fp):
    from adamcore.distributed import ShardedOptimizer
    cases = [
        (TypeError, "params must be an adamcore.FlatParams", dict(params=[fp["w"]])),
        (TypeError, "optimizer_class must be", dict(cls=adamcore.SparseAdam)),
        (ValueError, "stage must be 1 or 2", dict(stage=3)),
        (ValueError, "bucket must be", dict(bucket=0)),
        (TypeError, "average must be a bool", dict(average=1)),
        (ValueError, "not a param of params", dict(groups=[{"params": ["w", "x"]}])),
        (ValueError, "in no group", dict(groups=[{"params": ["w"]}])),
        (ValueError, "more than one group", dict(groups=[{"params": ["w", "b"]},
                                                         {"params": ["b"]}])),
        (ValueError, "lr", dict(lr=-1.0)),
        (TypeError, "comm must be", dict(comm=object())),
    ]
    for kind, words, kw in cases:
        cls = kw.pop("cls", adamcore.AdamW)
        params = kw.pop("params", fp)
        comm = kw.pop("comm", MPI.COMM_SELF)
        with pytest.raises(kind, match=words):
            ShardedOptimizer(cls, params, comm, **{"lr": 1e-2, **kw})
    opt = sharded(fp)
    before = fp.flat.copy()
    for g, words in [(np.zeros(3, np.float32), "1-D float32 array of 2870"),
                     (np.zeros(fp.flat.size, np.float64), "float32"),
                     (fp.flat, "overlap the params"), ([0.0], "numpy.ndarray")]:
        with pytest.raises((TypeError, ValueError), match=words):
            opt.step(g)
    assert fp.flat.tobytes() == before.tobytes() and opt.state_dict()["state"] == {}


# ---- under mpiexec ----------------------------------------------------------------

def mpirun(n_ranks, scenario, args=None, timeout=TIMEOUT):
    """Run a scenario on ``n_ranks`` ranks; returns (returncode, output). The
    launch is its own process group, killed whole on timeout."""
    cmd = [MPIEXEC, "-n", str(n_ranks), sys.executable, str(SCENARIOS), scenario]
    if args is not None:
        cmd.append(json.dumps(args))
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(SCENARIOS.parent)] + sys.path)}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"{scenario} at {n_ranks} ranks hung for {timeout} s:\n{out[-4000:]}")
    return proc.returncode, out


def passed(n_ranks, scenario, args=None):
    code, out = mpirun(n_ranks, scenario, args)
    assert code == 0, f"{scenario} at {n_ranks} ranks failed:\n{out[-6000:]}"
    return out


CONTRACT = (
    [{"optimizer": c, "dtype": d, "groups": True, "max_grad_norm": 1.0, "stage": s}
     for c in ("Adam", "AdamW") for d in ("float32", "float64") for s in (1, 2)]
    + [{"optimizer": "AdamW", "dtype": d, "groups": True} for d in ("float32", "float64")]
    + [{"optimizer": "Adam", "options": {"amsgrad": True, "maximize": True}, "steps": 20,
        "schedule": True, "bucket": 700, "n_threads": 2},
       {"optimizer": "AdamW", "skip_nonfinite": True, "max_grad_norm": 2.0, "nan_at": [1, 4]},
       {"optimizer": "AdamW", "skip_nonfinite": True, "nan_at": [0, 2], "average": False},
       {"optimizer": "AdamW", "stage": 1, "skip_nonfinite": True, "nan_at": [0, 11]},
       {"optimizer": "Adam", "groups": True, "toggle_amsgrad": True, "max_grad_norm": 1.0},
       {"optimizer": "AdamW", "small": True, "max_grad_norm": 0.5},
       {"optimizer": "AdamW", "impl": "numpy", "max_grad_norm": 1.0, "groups": True}]
    + [{"optimizer": c, "dtype": "float64", "groups": True, "max_grad_norm": 1.0}
       for c in ("SGD", "RMSprop", "Adagrad", "AdaBelief")]
)


@needs_mpi
@pytest.mark.parametrize("n_ranks", [1, 2, 3, 4])
def test_sharded_steps_are_bitwise_the_single_process_steps(n_ranks):
    out = passed(n_ranks, "contract", CONTRACT)
    assert out.count("PASS") == len(CONTRACT)


@needs_mpi
@pytest.mark.parametrize("n_ranks", [1, 2, 4])
@pytest.mark.parametrize("stage", [1, 2])
def test_memory_per_rank_is_its_shard_and_one_bucket(n_ranks, stage, tmp_path):
    args = {"n": 1 << 20, "bucket": 1 << 14, "stage": stage, "path": str(tmp_path / "m.npz")}
    assert "PASS memory" in passed(n_ranks, "memory", args)


@needs_mpi
@pytest.mark.parametrize("n_ranks", [2, 3, 4])
def test_refusals_reach_every_rank_and_change_nothing(n_ranks):
    assert "PASS faults" in passed(n_ranks, "faults")


@needs_mpi
def test_checkpoint_saved_at_3_ranks_resumes_at_2_and_1_and_in_one_process(tmp_path):
    path, params = tmp_path / "opt.npz", tmp_path / "params.npy"
    common = {"path": str(path), "params": str(params)}
    passed(3, "save", {**common, "steps": 5})
    for n_ranks in (2, 1):
        out = passed(n_ranks, "resume", {**common, "saved_ranks": 3, "saved_steps": 5,
                                         "steps": 4})
        assert f"PASS resumed at {n_ranks} ranks from a save at 3" in out
    # A single process, no MPI, continues from the 3-rank file as well.
    import mpi_scenarios as sc  # one rank in this process
    dtype = np.dtype(np.float32)
    fp = adamcore.FlatParams(sc.initial(sc.SHAPES, dtype))
    fp.flat[...] = np.load(params)
    single_opt = adamcore.AdamW.load(path, sc.reference_groups(fp, sc.GROUPS), max_grad_norm=5.0)
    for t in range(5, 9):
        total = fp.split(sc.reduced(fp.flat.size, dtype, t, 1))
        single_opt.step([total[k].copy() for k in sc.order_of(fp, sc.GROUPS)])
    ref_fp, ref = sc.resume_reference({"saved_ranks": 3, "saved_steps": 5, "steps": 4}, dtype)
    assert fp.flat.tobytes() == ref_fp.flat.tobytes()
    sc.same_state(single_opt.state_dict(), ref.state_dict(), "single process from 3 ranks")
    # ... and the other way: a single-process checkpoint resumed at 4 ranks.
    fp = adamcore.FlatParams(sc.initial(sc.SHAPES, dtype))
    plain = adamcore.AdamW(sc.reference_groups(fp, sc.GROUPS), max_grad_norm=5.0, amsgrad=True,
                           **sc.OPTIONS["AdamW"])
    for t in range(5):
        total = fp.split(sc.reduced(fp.flat.size, dtype, t, 1))
        plain.step([total[k].copy() for k in sc.order_of(fp, sc.GROUPS)])
    single = tmp_path / "single.npz"
    plain.save(single)
    np.save(params, fp.flat)
    out = passed(4, "resume", {"path": str(single), "params": str(params), "saved_ranks": 1,
                               "saved_steps": 5, "steps": 3, "stage": 1})
    assert "PASS resumed at 4 ranks from a save at 1" in out


@needs_mpi
@pytest.mark.parametrize("n_ranks", [1, 3])
def test_two_optimizers_step_from_two_threads(n_ranks):
    assert "PASS threads" in passed(n_ranks, "threads")


@needs_mpi
@pytest.mark.parametrize("how", ["exit", "raise"])
def test_a_rank_that_dies_mid_run_ends_the_launch(how):
    code, out = mpirun(3, "die", {"how": how}, timeout=120)
    assert code != 0, out
