"""Low-precision Adam state (state_dtype "bfloat16" and "int8", adamcore.qstate):
the kernel equals its NumPy mirror bit for bit over sizes, layouts, options,
thread counts and SIMD levels; the formats' rules; state_dict, checkpoints,
conversion and refusals."""

import numpy as np
import pytest

import adamcore
from adamcore import qstate
from helpers import (IMPL_PARAMS, SIMD_LEVELS, aligned_empty, assert_optimizers_equal,
                     optimizer_snapshot, assert_optimizer_snapshot_equal, requires_kernel,
                     simd_level)

pytest.importorskip("ml_dtypes")  # the test extra installs it; bfloat16 arrays need it

LOWP = ("bfloat16", "int8")
# partial blocks, the 4096 cut-off on either side, several threads' worth
SIZES = (1, 255, 4095, 4096, 4097, 40000, 70001)
OPTIONS = [dict(), dict(amsgrad=True), dict(weight_decay=0.1), dict(maximize=True),
           dict(weight_decay=0.1, decoupled_weight_decay=True, amsgrad=True),
           dict(eps_mode="keras", betas=(0.8, 0.99))]


def _train(impl, state_dtype, n, dtype, options, steps=4, n_threads=None, offset=0, seed=7,
           order="C", **kwargs):
    rng = np.random.default_rng(n)
    p = aligned_empty(n, dtype, offset)
    p[:] = rng.standard_normal(n)
    if order == "F":
        p = np.asfortranarray(p.reshape(-1, 1).repeat(1, axis=1))
    opt = adamcore.Adam([p], lr=1e-2, state_dtype=state_dtype, seed=seed, impl=impl,
                        n_threads=n_threads, **options, **kwargs)
    for _ in range(steps):
        g = rng.standard_normal(p.shape).astype(dtype)
        opt.step([g])
    return opt


@requires_kernel
@pytest.mark.parametrize("state_dtype", LOWP)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("dtype", (np.float32, np.float64))
@pytest.mark.parametrize("options", OPTIONS, ids=lambda o: ",".join(o) or "plain")
def test_c_equals_the_numpy_mirror(state_dtype, n, dtype, options):
    c = _train("c", state_dtype, n, dtype, options)
    ref = _train("numpy", state_dtype, n, dtype, options)
    assert_optimizers_equal(c, ref)


@requires_kernel
@pytest.mark.parametrize("state_dtype", LOWP)
@pytest.mark.parametrize("offset", (1, 3))
def test_misaligned_params_step_alike(state_dtype, offset):
    c = _train("c", state_dtype, 9001, np.float32, {}, offset=offset)
    ref = _train("numpy", state_dtype, 9001, np.float32, {}, offset=offset)
    assert_optimizers_equal(c, ref)


@requires_kernel
@pytest.mark.parametrize("state_dtype", LOWP)
def test_every_thread_count_and_simd_level_gives_the_same_bits(state_dtype):
    n = 3 * 2 ** 16 + 77
    ref = optimizer_snapshot(_train("numpy", state_dtype, n, np.float32, dict(amsgrad=True)))
    for level in SIMD_LEVELS:
        with simd_level(level):
            for nt in (1, 2, 3, 8):
                got = _train("c", state_dtype, n, np.float32, dict(amsgrad=True), n_threads=nt)
                assert_optimizer_snapshot_equal(optimizer_snapshot(got), ref, f"{level}/{nt}")


@pytest.mark.parametrize("impl", IMPL_PARAMS)
def test_many_params_of_mixed_formats_in_one_group(impl):
    sizes = (100, 5000, 4096, 300, 12345)
    rng = np.random.default_rng(0)
    ps = [rng.standard_normal(n).astype(np.float32) for n in sizes]
    opts = [adamcore.Adam([p.copy() for p in ps], state_dtype="int8", impl=i)
            for i in (impl, "numpy")]
    for _ in range(3):
        gs = [rng.standard_normal(n).astype(np.float32) for n in sizes]
        for o in opts:
            o.step([g.copy() for g in gs])
    assert_optimizers_equal(*opts)
    formats = [qstate.stored_format(dict(opts[0].state[i]), "exp_avg") for i in range(5)]
    assert formats == [qstate.NATIVE, qstate.INT8, qstate.INT8, qstate.NATIVE, qstate.INT8]


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("state_dtype", LOWP)
def test_clipping_and_skip_nonfinite(impl, state_dtype):
    a = _train(impl, state_dtype, 5000, np.float32, {}, max_grad_norm=0.5)
    b = _train("numpy", state_dtype, 5000, np.float32, {}, max_grad_norm=0.5)
    assert_optimizers_equal(a, b)
    before = optimizer_snapshot(a)
    g = np.ones(5000, np.float32)
    g[17] = np.nan
    a.skip_nonfinite = True
    assert a.step([g]) is False
    assert_optimizer_snapshot_equal(optimizer_snapshot(a), before)


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("state_dtype", LOWP)
def test_nonfinite_grads_propagate_alike(impl, state_dtype):
    opts = []
    for i in (impl, "numpy"):
        p = np.linspace(-1, 1, 5000, dtype=np.float32)
        o = adamcore.Adam([p], state_dtype=state_dtype, impl=i)
        g = np.ones(5000, np.float32)
        g[3], g[600] = np.nan, np.inf
        o.step([g])
        o.step([np.ones(5000, np.float32)])
        opts.append(o)
    assert_optimizers_equal(*opts)


def test_bfloat16_state_is_real_bfloat16_and_v_can_shrink():
    import ml_dtypes
    p = np.zeros(1000, np.float32)
    opt = adamcore.Adam([p], state_dtype="bfloat16")
    opt.step([np.ones(1000, np.float32)])
    v0 = opt.state[0]["exp_avg_sq"].astype(np.float32).copy()
    assert opt.state[0]["exp_avg"].dtype == ml_dtypes.bfloat16
    for _ in range(200):  # each step shrinks v by 0.1 %: below half a bfloat16 ulp
        opt.step([np.zeros(1000, np.float32)])
    v = opt.state[0]["exp_avg_sq"].astype(np.float32)
    expected = v0 * 0.999 ** 200
    assert abs(v.mean() / expected.mean() - 1) < 0.01  # round to nearest would stay at v0


def test_stochastic_rounding_is_unbiased_and_seeded():
    x = np.full(200000, 1 + 2 ** -10, np.float32)  # 1/8 of the way to the next bfloat16
    bits = qstate.element_bits(qstate.call_key(qstate.tensor_seed(0, 0), 1), x.size)
    up = qstate.bf16_value(qstate.bf16_round(x, bits & np.uint32(0xFFFF))) > 1
    assert abs(up.mean() - 1 / 8) < 0.005
    other = qstate.element_bits(qstate.call_key(qstate.tensor_seed(1, 0), 1), x.size)
    assert not np.array_equal(bits, other)


def test_int8_encoding_is_the_nearest_code_ties_up():
    for values, signed in ((qstate.SIGNED_MAP, True), (qstate.UNSIGNED_MAP, False)):
        q = np.random.default_rng(0).uniform(-1 if signed else 0, 1, 100000).astype(np.float32)
        q = np.concatenate([q, values, qstate.thresholds(values), [np.nan, -0.0, 0.0]])
        codes = qstate.encode(q.astype(np.float32), signed)
        d = np.abs(values[None, :].astype(np.float64) - q[:, None])
        finite = np.isfinite(q)
        best = d[finite].min(axis=1)
        assert np.array_equal(d[finite, codes[finite]], best)
        assert codes[-3] == (qstate.SIGNED_ZERO if signed else qstate.UNSIGNED_ZERO)


def test_the_maps_are_bitsandbytes():
    F = pytest.importorskip("bitsandbytes.functional")
    for values, signed in ((qstate.SIGNED_MAP, True), (qstate.UNSIGNED_MAP, False)):
        theirs = F.create_dynamic_map(signed=signed).numpy().astype(np.float32)
        assert np.array_equal(values.view(np.uint32), theirs.view(np.uint32))


@pytest.mark.parametrize("impl", IMPL_PARAMS)
@pytest.mark.parametrize("state_dtype", LOWP)
def test_state_dict_and_checkpoints_round_trip_bitwise(impl, state_dtype, tmp_path):
    a = _train(impl, state_dtype, 5000, np.float32, dict(amsgrad=True), seed=11)
    sd = a.state_dict()
    assert sd["param_groups"][0]["seed"] == 11
    if state_dtype == "int8":
        assert sd["state"][0]["qmap"] == qstate.QMAP_ID
    p = a.param_groups[0]["params"][0]
    b = adamcore.Adam([p.copy()], amsgrad=True, state_dtype=state_dtype, impl=impl)
    b.load_state_dict(sd)
    a.save(tmp_path / "opt.npz")
    c = adamcore.Adam.load(tmp_path / "opt.npz", [p.copy()], impl=impl)
    g = np.random.default_rng(5).standard_normal(5000).astype(np.float32)
    for o in (a, b, c):
        o.step([g])
    assert_optimizers_equal(a, b)
    assert_optimizers_equal(a, c)


@pytest.mark.parametrize("source", (None, "bfloat16", "int8"))
@pytest.mark.parametrize("target", (None, "bfloat16", "int8"))
def test_another_state_dtype_is_refused_or_converted(source, target):
    if source == target:
        return
    a = _train("numpy", source, 5000, np.float32, {})
    sd = a.state_dict()
    p = a.param_groups[0]["params"][0]
    b = adamcore.Adam([p.copy()], state_dtype=target)
    before = optimizer_snapshot(b)
    with pytest.raises(ValueError, match="convert=True"):
        b.load_state_dict(sd)
    assert_optimizer_snapshot_equal(optimizer_snapshot(b), before)
    b.load_state_dict(sd, convert=True)
    assert b.param_groups[0]["state_dtype"] == target
    assert qstate.stored_format(dict(b.state[0]), "exp_avg") == qstate.FORMATS[target]
    m_a = qstate.values(dict(a.state[0]), "exp_avg", np.float32)
    m_b = qstate.values(dict(b.state[0]), "exp_avg", np.float32)
    assert np.allclose(m_a, m_b, rtol=0.1, atol=0.02 * np.abs(m_a).max())
    b.step([np.ones(5000, np.float32)])


@pytest.mark.parametrize("impl", IMPL_PARAMS)
def test_changing_state_dtype_under_state_is_refused(impl):
    opt = _train(impl, "int8", 5000, np.float32, {})
    before = optimizer_snapshot(opt)
    opt.param_groups[0]["state_dtype"] = None
    with pytest.raises(ValueError, match="state_dtype cannot change"):
        opt.step([np.ones(5000, np.float32)])
    assert_optimizer_snapshot_equal(optimizer_snapshot(opt), before)


@pytest.mark.parametrize("bad", ("float16", "INT8", 8, np.float32))
def test_unknown_state_dtype_is_a_value_error(bad):
    p = np.zeros(10, np.float32)
    with pytest.raises(ValueError, match="state_dtype must be one of None, 'bfloat16', 'int8'"):
        adamcore.Adam([p], state_dtype=bad)
    opt = adamcore.Adam([p])
    with pytest.raises(ValueError, match="state_dtype"):
        opt.add_param_group({"params": [np.zeros(3, np.float32)], "state_dtype": bad})
    assert len(opt.param_groups) == 1


def test_kinds_without_low_precision_state_refuse_it():
    with pytest.raises(TypeError):
        adamcore.SGD([np.zeros(3, np.float32)], lr=0.1, state_dtype="int8")
    with pytest.raises(ValueError, match="unknown option"):
        adamcore.RMSprop([{"params": [np.zeros(3, np.float32)], "state_dtype": "int8"}])


def test_row_gradients_refuse_low_precision_state():
    table = np.zeros((100, 64), np.float32)
    opt = adamcore.Adam([table], state_dtype="int8")
    with pytest.raises(ValueError, match="state_dtype=None"):
        opt.step([adamcore.RowGrad(np.array([1, 2]), np.ones((2, 64), np.float32))])
    assert len(opt.state) == 0


@pytest.mark.parametrize("state_dtype", LOWP)
def test_state_bytes_are_the_formats(state_dtype):
    n = 2 ** 16
    opt = adamcore.Adam([np.zeros(n, np.float32)], state_dtype=state_dtype)
    opt.step([np.ones(n, np.float32)])
    nbytes = sum(a.nbytes for a in opt.state[0].values() if isinstance(a, np.ndarray))
    per_element = {"bfloat16": 4, "int8": 2 + 8 / 256}[state_dtype]
    assert nbytes == per_element * n
