"""Row gradients (adamcore.rows): RowGrad, SparseAdam, lazy and dense-equivalent Adam.

The C row step (csrc/rows.c) against its NumPy mirror bit for bit, over every
semantics of the registry, dtypes, widths that hit the duplicate-summing
buffer, thread counts and SIMD levels; the dense-equivalent semantics against
the dense step on the materialised gradient, bit for bit; SparseAdam against
torch.optim.SparseAdam; and the refusals, each leaving everything untouched.
"""

import numpy as np
import pytest

import adamcore
from adamcore import rows as R
from helpers import (DTYPES, IMPL_PARAMS, KERNEL, PARALLEL_MIN, ROW_OPTIONS, SIMD_LEVELS,
                     assert_bitwise_equal, assert_optimizer_snapshot_equal,
                     assert_optimizers_equal, optimizer_snapshot, random_values, requires_kernel,
                     row_optimizer, run_in_threads, simd_level)

SEMANTICS = list(R.SEMANTICS)


def row_grads(rng, n_rows, width, k, dtype, steps, hot=None):
    """``steps`` RowGrads of ``k`` rows each, indices drawn with heavy
    duplication (from ``hot`` rows when given), both index dtypes."""
    out = []
    for s in range(steps):
        high = hot if hot is not None else n_rows
        idx = rng.integers(0, high, k).astype(np.int32 if s % 2 else np.int64)
        out.append(adamcore.RowGrad(idx, random_values(rng, (k, width), dtype)))
    return out


def table(rng, n_rows, width, dtype):
    return random_values(rng, (n_rows, width), dtype, spread=False)


# ---- RowGrad -----------------------------------------------------------------------

@pytest.mark.parametrize("indices, rows, error, words", [
    ([0, 1], np.zeros((2, 3), np.float32), TypeError, "indices must be a numpy.ndarray"),
    (np.zeros(2), np.zeros((2, 3), np.float32), TypeError, "int32 or int64, got float64"),
    (np.zeros(2, np.int16), np.zeros((2, 3), np.float32), TypeError, "int32 or int64, got int16"),
    (np.zeros((2, 1), np.int64), np.zeros((2, 3), np.float32), ValueError, "must be 1-D"),
    (np.zeros(2, np.int64), np.zeros((3, 3), np.float32), ValueError, "K = len(indices) = 2"),
    (np.zeros(2, np.int64), np.zeros(6, np.float32), ValueError, "shape (K, D)"),
    (np.zeros(2, np.int64), np.zeros((2, 3), np.float16), TypeError, "float32 or float64"),
    (np.zeros(2, np.int64), np.zeros((3, 2), np.float32).T, ValueError, "rows must be C-contiguous"),
    (np.zeros(4, np.int64)[::2], np.zeros((2, 3), np.float32), ValueError,
     "indices must be C-contiguous"),
    (np.zeros(2, np.int64), np.zeros((2, 3), ">f4"), TypeError, "float32 or float64, got >f4"),
    (np.zeros(2, np.int64), np.zeros(25, np.uint8)[1:].view(np.float32).reshape(2, 3), ValueError,
     "rows is not aligned"),
])
def test_rowgrad_refuses_what_it_cannot_read_in_place(indices, rows, error, words):
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        adamcore.RowGrad(indices, rows)


def test_rowgrad_to_dense_sums_duplicates_in_input_order():
    rows = np.array([[1.0], [2.0], [1e8], [-1e8]], np.float32)
    dense = adamcore.RowGrad(np.array([3, 0, 3, 3]), rows).to_dense(5)
    # ((1 + 1e8) + -1e8) in float32 is 0: the order of the additions is the input's
    assert dense.tolist() == [[2.0], [0.0], [0.0], [0.0], [0.0]]


# ---- coalescing ---------------------------------------------------------------------

@requires_kernel
@pytest.mark.parametrize("n_rows", [1, 7, 2048, 2049, 1 << 22, 1 << 40])
@pytest.mark.parametrize("k", [0, 1, 5, 1000])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("pattern", ["random", "sorted", "reversed", "constant"])
def test_c_coalescing_equals_the_stable_argsort(rng, n_rows, k, index_dtype, pattern):
    high = min(n_rows, np.iinfo(index_dtype).max)
    idx = rng.integers(0, high, k).astype(index_dtype)
    if pattern == "sorted":
        idx.sort()
    elif pattern == "reversed":
        idx = np.ascontiguousarray(np.sort(idx)[::-1])
    elif pattern == "constant":
        idx[:] = high - 1
    c = KERNEL.rows_coalesce(idx, n_rows)
    ref = R.coalesce(idx, n_rows)
    assert_bitwise_equal(c.order, ref.order, "order")
    assert_bitwise_equal(c.start, ref.start, "start")
    assert_bitwise_equal(c.unique, ref.unique, "unique")


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("bad", [-1, 10, 2 ** 40])
def test_an_index_outside_the_table_is_named(impl, bad):
    idx = np.array([0, 3, bad, 9], np.int64)
    with pytest.raises(ValueError, match=rf"indices\[2\] = {bad} is outside the param's 10 rows"):
        R.prepare(adamcore.RowGrad(idx, np.zeros((4, 2))), 10, impl)


# ---- C == mirror, over threads and SIMD levels ----------------------------------------

def run_both(semantics, options, dtype, n_rows, width, k, steps, seed, n_threads=None,
             hot=None, **opt_kw):
    """(C optimizer, NumPy optimizer) after the same RowGrad steps."""
    rng = np.random.default_rng(seed)
    w = table(rng, n_rows, width, dtype)
    grads = row_grads(rng, n_rows, width, k, dtype, steps, hot)
    out = []
    for impl in ("c", "numpy"):
        opt = row_optimizer(semantics, [w.copy()], impl=impl, n_threads=n_threads,
                            **options, **opt_kw)
        for g in grads:
            opt.step([g])
        out.append(opt)
    return out


@requires_kernel
@pytest.mark.parametrize("semantics", SEMANTICS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("width", [1, 3, 17, 64, 700])  # 700 > the kernel's 512-element buffer
def test_c_equals_the_numpy_mirror(semantics, dtype, width):
    for o, options in enumerate(ROW_OPTIONS[semantics]):
        c, ref = run_both(semantics, options, dtype, 300, width, 200, 4, seed=width + o, hot=60)
        assert_optimizers_equal(c, ref)


@requires_kernel
@pytest.mark.parametrize("semantics", SEMANTICS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_every_thread_count_and_simd_level_gives_the_mirror_bits(semantics, dtype):
    n_rows, width = 3001, 37  # ~1460 distinct rows: above the serial threshold, split mid-row
    assert 1400 * width > 2 * PARALLEL_MIN
    options = ROW_OPTIONS[semantics][1]
    _, ref = run_both(semantics, options, dtype, n_rows, width, 2000, 3, seed=5)
    ref_snap = optimizer_snapshot(ref)
    for level in SIMD_LEVELS:
        with simd_level(level):
            for n_threads in (1, 2, 3, 7):
                c, _ = run_both(semantics, options, dtype, n_rows, width, 2000, 3, seed=5,
                                n_threads=n_threads)
                assert_optimizer_snapshot_equal(optimizer_snapshot(c), ref_snap,
                                                f"{level} {n_threads} threads")


# ---- the three semantics -----------------------------------------------------------------

@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("options", ROW_OPTIONS["dense"])
def test_dense_semantics_is_the_dense_step_on_the_materialised_gradient(impl, dtype, options):
    rng = np.random.default_rng(3)
    n_rows, width = 500, 9
    w = table(rng, n_rows, width, dtype)
    grads = row_grads(rng, n_rows, width, 300, dtype, 5, hot=100)
    grads.append(adamcore.RowGrad(np.zeros(0, np.int64), np.zeros((0, width), dtype)))
    rows_opt = adamcore.Adam([w.copy()], impl=impl, **options)
    dense_opt = adamcore.Adam([w.copy()], impl=impl, **options)
    for g in grads:
        rows_opt.step([g])
        dense_opt.step([g.to_dense(n_rows)])
    assert_optimizers_equal(rows_opt, dense_opt)


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("semantics", ["sparse_adam", "lazy"])
def test_absent_rows_stay_byte_identical(impl, semantics):
    rng = np.random.default_rng(4)
    w = table(rng, 400, 5, np.float32)
    before = w.copy()
    opt = row_optimizer(semantics, [w], impl=impl, **ROW_OPTIONS[semantics][-1])
    touched = np.zeros(400, bool)
    for g in row_grads(rng, 400, 5, 50, np.float32, 6, hot=200):
        opt.step([g])
        touched[g.indices] = True
    assert touched[:200].any() and not touched[200:].any()
    assert_bitwise_equal(w[200:], before[200:], "absent rows")
    for key in ("exp_avg", "exp_avg_sq"):
        assert not opt.state[0][key][200:].any(), key
    assert (w[touched] != before[touched]).any()


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_lazy_adam_is_adam_on_the_present_rows(impl, dtype):
    """Lazy steps equal dense Adam run on just the rows named (gathered),
    each step's rows once: the same update, the param's own step count."""
    rng = np.random.default_rng(6)
    w = table(rng, 50, 4, dtype)
    lazy = adamcore.Adam([w], lazy=True, impl=impl, lr=1e-2)
    m, v = np.zeros_like(w), np.zeros_like(w)
    expected = w.copy()
    for step in range(1, 6):
        idx = rng.choice(50, 10, replace=False)
        g = random_values(rng, (10, 4), dtype)
        lazy.step([adamcore.RowGrad(idx, g)])
        p, mm, vv = expected[idx], m[idx], v[idx]
        adamcore.functional.adam_step(p, g, mm, vv, step=step, lr=1e-2, beta1=0.9,
                                      beta2=0.999, eps=1e-8, impl=impl)
        expected[idx], m[idx], v[idx] = p, mm, vv
    assert_bitwise_equal(w, expected, "params")
    assert_bitwise_equal(lazy.state[0]["exp_avg_sq"], v, "exp_avg_sq")


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("semantics", SEMANTICS)
def test_the_step_count_is_the_params_own_and_counts_empty_row_grads(impl, semantics):
    w = np.ones((10, 3), np.float32)
    opt = row_optimizer(semantics, [w], impl=impl)
    empty = adamcore.RowGrad(np.zeros(0, np.int64), np.zeros((0, 3), np.float32))
    opt.step([empty])
    opt.step([None])
    opt.step([adamcore.RowGrad(np.array([2]), np.ones((1, 3), np.float32))])
    assert opt.state[0]["step"] == 2
    assert not np.array_equal(w[2], np.ones(3, np.float32))  # the row named moved
    if semantics != "dense":  # (dense: the others see zero grads, from zero state, so 0 moves)
        assert np.array_equal(w[[0, 1, 3]], np.ones((3, 3), np.float32))


@pytest.mark.parametrize("impl", IMPL_PARAMS)
def test_row_and_dense_grads_mix_in_one_step(impl):
    rng = np.random.default_rng(7)
    emb, dense = table(rng, 100, 8, np.float32), table(rng, 33, 1, np.float32)[:, 0].copy()
    bias = table(rng, 5, 1, np.float64)[:, 0].copy()
    opt = adamcore.Adam([{"params": [emb], "lazy": True}, {"params": [dense, bias]}],
                        impl=impl, lr=1e-2)
    alone = adamcore.Adam([emb.copy()], lazy=True, impl=impl, lr=1e-2)
    dense_alone = adamcore.Adam([dense.copy(), bias.copy()], impl=impl, lr=1e-2)
    for s in range(4):
        g = row_grads(rng, 100, 8, 30, np.float32, 1)[0]
        gd, gb = random_values(rng, 33, np.float32), random_values(rng, 5, np.float64)
        opt.step([g, gd, None if s == 2 else gb])
        alone.step([g])
        dense_alone.step([gd, None if s == 2 else gb])
    assert_bitwise_equal(emb, alone.param_groups[0]["params"][0], "table")
    assert_bitwise_equal(dense, dense_alone.param_groups[0]["params"][0], "dense")
    assert_bitwise_equal(bias, dense_alone.param_groups[0]["params"][1], "bias")
    assert opt.state[0]["step"] == 4 and opt.state[1]["step"] == 4 and opt.state[2]["step"] == 3


# ---- PyTorch parity --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype, rtol", [(np.float32, 1e-5), (np.float64, 1e-12)])
@pytest.mark.parametrize("maximize", [False, True])
@pytest.mark.parametrize("impl", IMPL_PARAMS)
def test_sparse_adam_matches_torch_on_embedding_gradients(dtype, rtol, maximize, impl):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(8)
    n_rows, width = 200, 16
    w0 = table(rng, n_rows, width, dtype)
    emb = torch.nn.Embedding(n_rows, width, sparse=True, dtype=getattr(torch, np.dtype(dtype).name))
    emb.weight.data = torch.from_numpy(w0.copy())
    theirs = torch.optim.SparseAdam(emb.parameters(), lr=1e-2, maximize=maximize)
    w = w0.copy()
    ours = adamcore.SparseAdam([w], lr=1e-2, maximize=maximize, impl=impl)
    for _ in range(100):
        idx = rng.zipf(1.3, 256) % 40  # heavy duplication over 40 hot rows
        upstream = rng.standard_normal((256, width)).astype(dtype)
        emb.zero_grad()
        emb(torch.from_numpy(idx)).backward(torch.from_numpy(upstream))
        grad = emb.weight.grad
        assert grad.is_sparse and not grad.is_coalesced()
        theirs.step()
        # the rows torch's backward produced, uncoalesced, as adamcore receives them
        ours.step([adamcore.RowGrad(grad._indices()[0].numpy().copy(), grad._values().numpy().copy())])
    state = theirs.state[emb.weight]
    np.testing.assert_allclose(w, emb.weight.detach().numpy(), rtol=rtol, atol=0)
    # torch's coalesce sums duplicates in its own order; a moment near a
    # cancellation differs by more than rtol of itself, not of the moments' scale
    for key in ("exp_avg", "exp_avg_sq"):
        expected = state[key].numpy()
        np.testing.assert_allclose(ours.state[0][key], expected, rtol=rtol,
                                   atol=rtol * np.abs(expected).max(), err_msg=key)
    assert ours.state[0]["step"] == state["step"] == 100
    assert_bitwise_equal(w[40:], w0[40:], "rows torch never saw")


# ---- clipping, non-finite skips, schedules, checkpoints -----------------------------------------

@requires_kernel
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("width", [1, 7, 600])
def test_the_coalesced_norm_is_the_mirrors_for_any_thread_count(dtype, width):
    rng = np.random.default_rng(width)
    g = row_grads(rng, 5000, width, 4000, dtype, 1, hot=3000)[0]
    c = R.prepare(g, 5000, "numpy")
    expected = R.sumsq(g.rows, c)
    for n_threads in (1, 2, 5):
        assert KERNEL.rows_sumsq(g.rows, c, n_threads) == expected
    dense = np.linalg.norm(g.to_dense(5000).astype(np.float64))
    assert np.isclose(np.sqrt(expected[0]), dense, rtol=1e-12)


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("semantics", SEMANTICS)
def test_clipping_uses_the_norm_of_the_coalesced_gradient(impl, semantics):
    rng = np.random.default_rng(9)
    emb, bias = table(rng, 60, 4, np.float64), table(rng, 3, 1, np.float64)[:, 0].copy()
    g = row_grads(rng, 60, 4, 80, np.float64, 1, hot=20)[0]
    gb = random_values(rng, 3, np.float64)
    params, initial = [emb, bias], [emb.copy(), bias.copy()]
    if semantics == "sparse_adam":
        opt = adamcore.SparseAdam([emb], impl=impl, max_grad_norm=0.5)
        opt.step([g])
        dense = [g.to_dense(60)]
    else:
        opt = row_optimizer(semantics, params, impl=impl, max_grad_norm=0.5)
        opt.step([g, gb])
        dense = [g.to_dense(60), gb]
    expected = np.sqrt(sum(float(np.sum(d * d)) for d in dense))
    assert np.isclose(opt.last_grad_norm, expected, rtol=1e-13)
    if semantics == "dense":  # the same scale reaches the kernel: a dense twin agrees closely
        twin = adamcore.Adam(initial, impl=impl, max_grad_norm=0.5)
        twin.step(dense)
        np.testing.assert_allclose(emb, twin.param_groups[0]["params"][0], rtol=1e-12)


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("semantics", SEMANTICS)
@pytest.mark.parametrize("bad", ["nan", "inf", "overflow"])
def test_skip_nonfinite_skips_a_step_whose_coalesced_rows_are_not_finite(impl, semantics, bad):
    w = np.ones((8, 2), np.float32)
    opt = row_optimizer(semantics, [w], impl=impl, skip_nonfinite=True)
    opt.step([adamcore.RowGrad(np.array([1]), np.ones((1, 2), np.float32))])
    snap = optimizer_snapshot(opt)
    rows = np.ones((2, 2), np.float32)
    if bad == "overflow":  # finite rows whose sum is not: 3e38 + 3e38 = inf in float32
        rows[:] = 3e38
    else:
        rows[1, 0] = float(bad)
    assert opt.step([adamcore.RowGrad(np.array([5, 5]), rows)]) is False
    assert opt.skipped_steps == 1
    assert_optimizer_snapshot_equal(optimizer_snapshot(opt), snap)


@pytest.mark.parametrize("impl", IMPL_PARAMS)
def test_schedules_drive_sparse_adam(impl):
    rng = np.random.default_rng(10)
    w = table(rng, 30, 3, np.float32)
    opt = adamcore.SparseAdam([w.copy()], lr=1e-2, impl=impl)
    by_hand = adamcore.SparseAdam([w.copy()], lr=1e-2, impl=impl)
    sched = adamcore.StepLR(opt, step_size=2, gamma=0.5)
    for s, g in enumerate(row_grads(rng, 30, 3, 10, np.float32, 6)):
        by_hand.param_groups[0]["lr"] = 1e-2 * 0.5 ** (s // 2)
        opt.step([g])
        by_hand.step([g])
        sched.step()
    assert_optimizers_equal(opt, by_hand)


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("semantics", SEMANTICS)
def test_a_checkpoint_continues_bitwise(tmp_path, impl, semantics):
    rng = np.random.default_rng(11)
    w = table(rng, 40, 6, np.float64)
    grads = row_grads(rng, 40, 6, 25, np.float64, 8, hot=30)
    options = ROW_OPTIONS[semantics][1]
    straight = row_optimizer(semantics, [w.copy()], impl=impl, **options)
    for g in grads:
        straight.step([g])
    first = row_optimizer(semantics, [w.copy()], impl=impl, **options)
    for g in grads[:4]:
        first.step([g])
    first.save(tmp_path / "opt.npz")
    params = [first.param_groups[0]["params"][0].copy()]
    cls = type(first)
    resumed = cls.load(tmp_path / "opt.npz", params, impl=impl)
    assert resumed.param_groups[0].get("lazy", False) == (semantics == "lazy")
    again = cls(params=[params[0].copy()], impl=impl, **options,
                **({} if semantics == "sparse_adam" else {"lazy": semantics == "lazy"}))
    again.load_state_dict(first.state_dict())
    for g in grads[4:]:
        resumed.step([g])
        again.step([g])
    assert_optimizers_equal(resumed, straight)
    assert_optimizers_equal(again, straight)


def test_a_state_dict_saved_before_lazy_existed_loads_as_not_lazy():
    w = np.ones((4, 2), np.float32)
    opt = adamcore.Adam([w])
    opt.step([adamcore.RowGrad(np.array([1]), np.ones((1, 2), np.float32))])
    sd = opt.state_dict()
    del sd["param_groups"][0]["lazy"]
    restored = adamcore.Adam([w.copy()], lazy=True)
    restored.load_state_dict(sd)
    assert restored.param_groups[0]["lazy"] is False


# ---- bad input: refused, nothing modified --------------------------------------------------------

def _bad_cases():
    f32 = np.float32
    ok_rows = np.ones((2, 3), f32)
    yield "out of range", [adamcore.RowGrad(np.array([0, 8]), ok_rows), None], ValueError, \
        r"grads\[0\]|indices\[1\] = 8 is outside"
    yield "negative", [adamcore.RowGrad(np.array([-1, 0]), ok_rows), None], ValueError, \
        r"indices\[0\] = -1 is outside"
    yield "width", [adamcore.RowGrad(np.array([0, 1]), np.ones((2, 4), f32)), None], ValueError, \
        r"grads\[0\].rows has width 4 but params\[0\] has rows of width 3"
    yield "dtype", [adamcore.RowGrad(np.array([0, 1]), np.ones((2, 3))), None], TypeError, \
        r"grads\[0\].rows has dtype float64 but params\[0\] has dtype float32"
    yield "1-D param", [None, adamcore.RowGrad(np.array([0]), np.ones((1, 1), f32))], ValueError, \
        r"grads\[1\] is a RowGrad but params\[1\] has shape \(5,\)"
    yield "later bad", [adamcore.RowGrad(np.array([0, 1]), ok_rows),
                        adamcore.RowGrad(np.array([9]), np.ones((1, 1), f32))], ValueError, \
        r"grads\[1\] is a RowGrad but params\[1\]"
    yield "dense grad bad", [adamcore.RowGrad(np.array([0, 1]), ok_rows),
                             np.ones(4, f32)], ValueError, r"grads\[1\].*shape"


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("semantics", ["lazy", "dense"])
@pytest.mark.parametrize("case, grads, error, words", list(_bad_cases()),
                         ids=[c[0] for c in _bad_cases()])
def test_bad_row_grads_are_refused_with_nothing_modified(impl, semantics, case, grads, error,
                                                         words):
    emb, vec = np.arange(24, dtype=np.float32).reshape(8, 3), np.ones(5, np.float32)
    opt = adamcore.Adam([emb, vec], lazy=semantics == "lazy", impl=impl)
    opt.step([adamcore.RowGrad(np.array([3, 3]), np.ones((2, 3), np.float32)), np.ones(5, np.float32)])
    snap = optimizer_snapshot(opt)
    with pytest.raises(error, match=words):
        opt.step(grads)
    assert_optimizer_snapshot_equal(optimizer_snapshot(opt), snap)


@pytest.mark.parametrize("impl", IMPL_PARAMS)
def test_a_row_grad_that_overlaps_what_the_step_writes_is_refused(impl):
    emb = np.zeros((8, 3), np.float32)
    opt = adamcore.Adam([emb], impl=impl)
    opt.step([adamcore.RowGrad(np.array([1]), np.ones((1, 3), np.float32))])
    snap = optimizer_snapshot(opt)
    with pytest.raises(ValueError, match="overlaps"):
        opt.step([adamcore.RowGrad(np.array([0, 1]), emb[2:4])])
    with pytest.raises(ValueError, match="overlaps"):
        opt.step([adamcore.RowGrad(np.array([0]), opt.state[0]["exp_avg"][5:6])])
    assert_optimizer_snapshot_equal(optimizer_snapshot(opt), snap)


@pytest.mark.parametrize("name", ["SGD", "RMSprop", "Adagrad", "AdaBelief"])
def test_kinds_without_a_row_step_refuse_row_grads(name):
    w = np.zeros((4, 2), np.float32)
    opt = getattr(adamcore, name)([w], lr=1e-2)
    with pytest.raises(TypeError, match=r"grads\[0\] is a RowGrad, which the .* optimizer does "
                                        "not take; row gradients step Adam, AdamW"):
        opt.step([adamcore.RowGrad(np.array([1]), np.ones((1, 2), np.float32))])
    assert not w.any() and len(opt.state) == 0


def test_sparse_adam_refuses_dense_grads_and_tables_that_are_not_2d():
    w = np.zeros((4, 2), np.float32)
    opt = adamcore.SparseAdam([w])
    with pytest.raises(TypeError, match=r"grads\[0\] is a ndarray; SparseAdam steps row gradients"):
        opt.step([np.ones((4, 2), np.float32)])
    assert not w.any() and len(opt.state) == 0
    with pytest.raises(ValueError, match=r"SparseAdam params must be 2-D tables.*\(4,\)"):
        adamcore.SparseAdam([np.zeros(4, np.float32)])
    with pytest.raises(ValueError, match="Invalid beta parameter at index 1"):
        adamcore.SparseAdam([w], betas=(0.9, 1.0))


def test_sparse_adam_is_not_a_bucket_kind():
    from adamcore import kinds, plan
    w = np.zeros(3, np.float32)
    bucket = plan.Bucket(kinds.SPARSE_ADAM, kinds.SparseAdamHyper(1e-3, 0.9, 0.999, 1e-8, False),
                         1, [w], [w.copy()], ([np.zeros(3, np.float32)], [np.zeros(3, np.float32)],
                                              None))
    with pytest.raises(ValueError, match="steps row gradients .* only, not buckets"):
        plan.check_buckets([bucket], None)


# ---- threads --------------------------------------------------------------------------------

@requires_kernel
def test_threads_stepping_one_sparse_adam_lose_no_step():
    rng = np.random.default_rng(12)
    w = table(rng, 2000, 16, np.float32)
    grads = row_grads(rng, 2000, 16, 500, np.float32, 1)
    shared = adamcore.SparseAdam([w.copy()], n_threads=2)
    sequential = adamcore.SparseAdam([w.copy()], n_threads=2)
    for _ in range(4 * 20):
        sequential.step(grads)
    run_in_threads(4, lambda k: [shared.step(grads) for _ in range(20)])
    assert_optimizers_equal(shared, sequential)

