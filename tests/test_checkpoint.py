"""Checkpoints: ``opt.save`` / ``Adam.load`` through ``.npz`` files (bitwise
continuation, atomic writes, damaged or mismatched files refused) and
conversion to and from torch's Adam ``state_dict()``. Tests that need torch
import it themselves, so the others run without it."""

import json
import os
import sys

import numpy as np
import pytest

import adamcore
from adamcore import torch_state
from helpers import (
    DTYPES,
    IMPL_PARAMS,
    assert_bitwise_equal,
    assert_optimizer_snapshot_equal,
    assert_optimizers_equal,
    assert_unchanged,
    optimizer_snapshot,
    random_values,
    requires_kernel,
    snapshot,
)

impls = pytest.mark.parametrize("impl", IMPL_PARAMS)
dtypes = pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
classes = pytest.mark.parametrize("cls", [adamcore.Adam, adamcore.AdamW],
                                  ids=lambda c: c.__name__)

#: params[1] is Fortran-ordered (state follows the param's layout); params[4]
#: never gets a grad, so it has no state; params[3] skips every other step,
#: so the step counts differ.
SHAPES = [(5,), (3, 4), (7,), (2, 3), (1,)]
#: The second group's options; lr a NumPy scalar, which must round-trip exactly.
SECOND = dict(lr=np.float32(0.05), amsgrad=True, weight_decay=0.1)
TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-12, atol=1e-14)}


def make_params(dtype, seed=0):
    rng = np.random.default_rng(seed)
    params = [random_values(rng, s, dtype) for s in SHAPES]
    params[1] = np.asfortranarray(params[1])
    return params


def make_opt(cls, params, impl, **second):
    return cls([{"params": params[:2]}, {"params": params[2:], **SECOND, **second}],
               lr=0.01, impl=impl)


def grad_steps(params, n, seed):
    """``n`` lists of grads laid out like the params (see SHAPES for the Nones)."""
    rng = np.random.default_rng(seed)
    steps = []
    for k in range(n):
        grads = []
        for p in params:
            g = np.empty_like(p)
            g[...] = random_values(rng, p.shape, p.dtype)
            grads.append(g)
        grads[4] = None
        if k % 2:
            grads[3] = None
        steps.append(grads)
    return steps


def copies(params):
    return [p.copy(order="K") for p in params]


def options(opt):
    return [{k: v for k, v in g.items() if k != "params"} for g in opt.param_groups]


def trained(tmp_path, cls=adamcore.Adam, dtype=np.float32, impl="numpy", steps=3):
    """(params, path of a checkpoint after ``steps`` steps)."""
    params = make_params(dtype)
    opt = make_opt(cls, params, impl, eps_mode="keras")
    for g in grad_steps(params, steps, seed=1):
        opt.step(g)
    path = tmp_path / "opt.npz"
    opt.save(path)
    return params, path


# ---- save / load round trips -------------------------------------------------------

@impls
@dtypes
@classes
def test_load_continues_bitwise(cls, dtype, impl, tmp_path):
    params = make_params(dtype)
    opt = make_opt(cls, params, impl, eps_mode="keras")
    first, then = grad_steps(params, 5, seed=1), grad_steps(params, 5, seed=2)
    for g in first:
        opt.step(g)
    opt.save(tmp_path / "opt.npz")
    saved_params = copies(params)
    for g in then:
        opt.step(g)
    loaded = cls.load(tmp_path / "opt.npz", saved_params, impl=impl, n_threads=1)
    assert (loaded.impl, loaded.n_threads) == (impl, 1)
    assert options(loaded) == options(make_opt(cls, params, impl, eps_mode="keras"))
    assert loaded.defaults == opt.defaults
    assert sorted(loaded.state) == [0, 1, 2, 3]
    for g in then:
        loaded.step(g)
    assert_optimizers_equal(loaded, opt)


@requires_kernel
def test_saved_by_c_continues_bitwise_in_numpy(tmp_path):
    params = make_params(np.float64)
    opt = make_opt(adamcore.Adam, params, "c")
    for g in grad_steps(params, 3, seed=1):
        opt.step(g)
    opt.save(tmp_path / "opt.npz")
    loaded = adamcore.Adam.load(tmp_path / "opt.npz", copies(params), impl="numpy")
    for g in grad_steps(params, 3, seed=2):
        opt.step(g)
        loaded.step(g)
    assert_optimizers_equal(loaded, opt)


def test_load_before_any_step(tmp_path):
    params = make_params(np.float32)
    make_opt(adamcore.AdamW, params, "numpy").save(tmp_path / "opt.npz")
    loaded = adamcore.AdamW.load(tmp_path / "opt.npz", copies(params), impl="numpy")
    assert len(loaded.state) == 0
    assert options(loaded) == options(make_opt(adamcore.AdamW, params, "numpy"))


def test_load_into_param_group_dicts_takes_options_from_file(tmp_path):
    params, path = trained(tmp_path)
    mine = copies(params)
    loaded = adamcore.Adam.load(path, [{"params": mine[:2], "lr": 9.0}, {"params": mine[2:]}],
                                impl="numpy")
    assert [g["lr"] for g in loaded.param_groups] == [0.01, SECOND["lr"]]
    assert loaded.param_groups[1]["eps_mode"] == "keras"


def test_load_refuses_hyperparameters_in_kwargs(tmp_path):
    params, path = trained(tmp_path)
    with pytest.raises(TypeError, match=r"takes \['lr'\] from the checkpoint"):
        adamcore.Adam.load(path, copies(params), lr=0.1)


def test_load_refuses_another_class(tmp_path):
    params, path = trained(tmp_path, cls=adamcore.AdamW)
    with pytest.raises(ValueError, match=r"opt\.npz: saved from AdamW, not Adam .*AdamW\.load"):
        adamcore.Adam.load(path, copies(params))


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        adamcore.Adam.load(tmp_path / "nothing.npz", make_params(np.float32))


# ---- the file ------------------------------------------------------------------------

@pytest.mark.parametrize("as_str", [True, False], ids=["str", "pathlike"])
def test_save_writes_exactly_the_given_path(tmp_path, as_str):
    """np.savez given a name without ".npz" would add one; save never does."""
    params = make_params(np.float32)
    opt = make_opt(adamcore.Adam, params, "numpy")
    opt.step(grad_steps(params, 1, seed=1)[0])
    path = tmp_path / "checkpoint"
    opt.save(str(path) if as_str else path)
    assert os.listdir(tmp_path) == ["checkpoint"]
    assert_optimizers_equal(adamcore.Adam.load(path, copies(params)), opt)


def test_save_replaces_an_older_checkpoint(tmp_path):
    params = make_params(np.float32)
    opt = make_opt(adamcore.Adam, params, "numpy")
    for g in grad_steps(params, 4, seed=1):
        opt.save(tmp_path / "opt.npz")
        opt.step(g)
    opt.save(tmp_path / "opt.npz")
    loaded = adamcore.Adam.load(tmp_path / "opt.npz", copies(params))
    assert_optimizers_equal(loaded, opt)
    assert os.listdir(tmp_path) == ["opt.npz"]


def test_file_layout(tmp_path):
    """The format the module docstring describes, readable without pickle."""
    _, path = trained(tmp_path)
    with np.load(path, allow_pickle=False) as npz:
        meta = json.loads(npz["metadata"].item())
        assert sorted(npz.files) == sorted(["metadata"] + meta["arrays"])
        assert npz["steps"].dtype == np.int64
        assert npz["steps"].tolist() == [3, 3, 3, 2]
        assert npz["state.1.exp_avg"].flags.f_contiguous
    assert meta["format"] == "adamcore-checkpoint" and meta["version"] == 1
    assert meta["optimizer"] == "Adam"
    assert meta["params"] == [{"shape": list(s), "dtype": "float32"} for s in SHAPES]
    assert [g["params"] for g in meta["param_groups"]] == [[0, 1], [2, 3, 4]]
    assert meta["param_groups"][1]["lr"] == float(SECOND["lr"])
    assert meta["state"] == [0, 1, 2, 3]
    assert meta["arrays"] == ["steps", "state.0.exp_avg", "state.0.exp_avg_sq",
                              "state.1.exp_avg", "state.1.exp_avg_sq",
                              *[f"state.{i}.{k}" for i in (2, 3)
                                for k in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")]]


# ---- atomic writes ---------------------------------------------------------------------

def _fail_in_savez(monkeypatch):
    real = np.savez

    def half_then_crash(file, **arrays):
        real(file, **arrays)
        file.truncate(file.tell() // 2)
        raise OSError("disk full")
    monkeypatch.setattr(np, "savez", half_then_crash)


def _fail_in_replace(monkeypatch):
    def crash(src, dst):
        raise OSError("disk full")
    monkeypatch.setattr(os, "replace", crash)


@pytest.mark.parametrize("before", ["no-file", "old-file"])
@pytest.mark.parametrize("fail", [_fail_in_savez, _fail_in_replace],
                         ids=["fail-writing", "fail-renaming"])
def test_failed_save_leaves_the_old_file_and_no_temporary(tmp_path, monkeypatch, fail, before):
    params = make_params(np.float32)
    opt = make_opt(adamcore.Adam, params, "numpy")
    for g in grad_steps(params, 2, seed=1):
        opt.step(g)
    path = tmp_path / "opt.npz"
    if before == "old-file":
        opt.save(path)
    old = sorted(os.listdir(tmp_path)), path.read_bytes() if path.exists() else None
    opt.step(grad_steps(params, 1, seed=2)[0])
    fail(monkeypatch)
    with pytest.raises(OSError, match="disk full"):
        opt.save(path)
    assert (sorted(os.listdir(tmp_path)), path.read_bytes() if path.exists() else None) == old


def test_data_reaches_the_disk_before_the_rename(tmp_path, monkeypatch):
    """The temporary file is synced, then renamed within the target's directory."""
    synced, renamed = [], []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        synced.append(os.fstat(fd).st_ino)
        real_fsync(fd)

    def replace(src, dst):
        renamed.append((os.path.dirname(src), os.stat(src).st_ino in synced))
        real_replace(src, dst)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    make_opt(adamcore.Adam, make_params(np.float32), "numpy").save(tmp_path / "opt.npz")
    assert renamed == [(str(tmp_path), True)]


def test_saved_file_gets_the_usual_permissions(tmp_path):
    """Like any new file (umask applied), not private like a tempfile's."""
    path = tmp_path / "opt.npz"
    make_opt(adamcore.Adam, make_params(np.float32), "numpy").save(path)
    (tmp_path / "plain").write_bytes(b"")
    assert path.stat().st_mode == (tmp_path / "plain").stat().st_mode


# ---- damaged files -----------------------------------------------------------------------

def _rewrite(path, edit):
    """Rewrite the checkpoint at ``path`` with ``edit(entries, metadata)`` applied."""
    with np.load(path, allow_pickle=False) as npz:
        entries = {name: npz[name] for name in npz.files}
    original = entries["metadata"]
    meta = json.loads(original.item())
    edit(entries, meta)
    if entries.get("metadata") is original:  # not replaced or removed by the edit
        entries["metadata"] = np.array(json.dumps(meta))
    with open(path, "wb") as f:
        np.savez(f, **entries)


def _edit(fn):
    return lambda path: _rewrite(path, fn)


def _bytes(fn):
    return lambda path: path.write_bytes(fn(path.read_bytes()))


def _flip_in_metadata(data):
    k = data.index("adamcore-checkpoint".encode("utf-32-le"))  # NumPy stores str as UTF-32
    return data[:k] + bytes([data[k] ^ 1]) + data[k + 1:]


def _npy(path):
    with open(path, "wb") as f:
        np.save(f, np.zeros(3))


DAMAGED = [
    ("empty", _bytes(lambda b: b""), r"File is not a zip file"),
    ("truncated-half", _bytes(lambda b: b[:len(b) // 2]), r"File is not a zip file"),
    ("truncated-last-byte", _bytes(lambda b: b[:-1]), r"File is not a zip file"),
    ("garbage", _bytes(lambda b: np.random.default_rng(5).bytes(len(b))), r"not a zip file"),
    ("flipped-metadata-byte", _bytes(_flip_in_metadata), r"entry 'metadata\.npy' is damaged"),
    ("npy-not-npz", _npy, r"File is not a zip file"),
    ("no-metadata", _edit(lambda e, m: e.pop("metadata")), r"no 'metadata' entry"),
    ("metadata-not-json", _edit(lambda e, m: e.update(metadata=np.array("{"))),
     r"Expecting property name"),
    ("metadata-pickled", _edit(lambda e, m: e.update(metadata=np.array([m], object))),
     r"allow_pickle=False"),
    ("other-format", _edit(lambda e, m: m.update(format="keras")),
     r"metadata does not name the format 'adamcore-checkpoint'"),
    ("future-version", _edit(lambda e, m: m.update(version=2)),
     r"format version 2 is not supported \(this adamcore reads version 1\)"),
    ("garbled-metadata", _edit(lambda e, m: m.update(state="all")),
     r"metadata lacks or garbles"),
    ("groups-disagree-with-params", _edit(lambda e, m: m["params"].pop()),
     r"metadata lists 4 params but its groups hold 5"),
    ("missing-entry", _edit(lambda e, m: e.pop("state.0.exp_avg")),
     r"entries missing: \['state\.0\.exp_avg'\], unexpected: \[\]"),
    ("unexpected-entry", _edit(lambda e, m: e.update(extra=np.zeros(2))),
     r"entries missing: \[\], unexpected: \['extra'\]"),
    ("state-of-no-param", _edit(lambda e, m: (m.update(state=[0, 1, 3]),
                                              e.update(steps=e["steps"][[0, 1, 3]]))),
     r"entry 'state\.2\.exp_avg' belongs to no param with state"),
    ("float-steps", _edit(lambda e, m: e.update(steps=e["steps"].astype(np.float64))),
     r"'steps' must be 4 int64 step counts, got float64"),
]


@pytest.mark.parametrize("case", DAMAGED, ids=lambda c: c[0])
def test_damaged_file_is_refused_clearly(tmp_path, case):
    _, damage, reason = case
    params, path = trained(tmp_path)
    damage(path)
    mine = copies(params)
    before = snapshot(mine)
    with pytest.raises(ValueError, match=r"opt\.npz: not a valid adamcore checkpoint: .*"
                                         + reason):
        adamcore.Adam.load(path, mine)
    assert_unchanged(mine, before, "param")


def test_every_truncation_and_sampled_byte_flips(tmp_path):
    """Cut short (every 5th length, and every one of the last 256, where the
    zip directory is): refused as not a valid checkpoint. One byte changed
    (every 7th position): refused, or loaded intact where the byte is a zip
    field that nothing checks (a time stamp, say)."""
    params, path = trained(tmp_path)
    data = path.read_bytes()
    expected = optimizer_snapshot(adamcore.Adam.load(path, copies(params)))
    invalid = "opt.npz: not a valid adamcore checkpoint: "
    for n in sorted({*range(0, len(data), 5), *range(len(data) - 256, len(data))}):
        path.write_bytes(data[:n])
        with pytest.raises(ValueError, match=invalid):
            adamcore.Adam.load(path, params)
    for k in range(0, len(data), 7):
        path.write_bytes(data[:k] + bytes([data[k] ^ 0x5A]) + data[k + 1:])
        try:
            opt = adamcore.Adam.load(path, copies(params))
        except ValueError as exc:
            assert invalid in str(exc), k
        else:
            assert_optimizer_snapshot_equal(optimizer_snapshot(opt), expected, f"flip at {k}")


# ---- checkpoints that do not fit the params -------------------------------------------------

def _reshaped(params, i, shape):
    params[i] = np.zeros(shape, params[i].dtype)
    return params


MISFITS = [
    ("shape", lambda p: _reshaped(p, 1, (4, 3)),
     r"params\[1\] is a float32 array of shape \(4, 3\); the checkpoint was saved with a "
     r"float32 array of shape \(3, 4\)"),
    ("dtype", lambda p: p[:1] + [p[1].astype(np.float64)] + p[2:],
     r"params\[1\] is a float64 array of shape \(3, 4\); the checkpoint was saved with a "
     r"float32 array"),
    ("shape-of-a-param-without-state", lambda p: _reshaped(p, 4, (2,)),
     r"params\[4\] is a float32 array of shape \(2,\)"),
    ("param-count", lambda p: p[:4], r"the checkpoint holds 5 params, got 4"),
    ("group-count", lambda p: [{"params": p}],
     r"state_dict has 2 param groups, this optimizer has 1"),
    ("group-sizes", lambda p: [{"params": p[:3]}, {"params": p[3:]}],
     r"param group 0 has 2 params in state_dict, 3 here"),
]


@pytest.mark.parametrize("case", MISFITS, ids=lambda c: c[0])
def test_checkpoint_for_other_params_is_refused(tmp_path, case):
    _, change, message = case
    params, path = trained(tmp_path)
    mine = copies(params)
    before = snapshot(mine)
    with pytest.raises(ValueError, match=r"opt\.npz: " + message):
        adamcore.Adam.load(path, change(list(mine)))
    assert_unchanged(mine, before, "param")


# ---- torch state_dicts ---------------------------------------------------------------------

def torch_opt(torch, cls, tparams):
    """torch's optimizer with make_opt's groups."""
    second = {**SECOND, "lr": float(SECOND["lr"])}
    return getattr(torch.optim, cls.__name__)(
        [{"params": tparams[:2]}, {"params": tparams[2:], **second}], lr=0.01)


def torch_step(torch, topt, tparams, grads):
    for tp, g in zip(tparams, grads):
        tp.grad = None if g is None else torch.from_numpy(g.copy(order="K"))
    topt.step()


def assert_same_as_torch(opt, topt, tparams, **tol):
    """Params and state close to torch's (bitwise equal with no tolerance)."""
    def check(a, b, what):
        if tol:
            np.testing.assert_allclose(a, b, err_msg=what, **tol)
        else:
            assert_bitwise_equal(a, b, what)
    params = [p for g in opt.param_groups for p in g["params"]]
    for i, (p, tp) in enumerate(zip(params, tparams)):
        check(p, tp.numpy(), f"params[{i}]")
        tstate = topt.state.get(tp, {})
        assert sorted(tstate) == sorted(opt.state.get(i, {})), f"state[{i}] keys"
        for k, v in tstate.items():
            if k == "step":
                assert v.item() == opt.state[i]["step"]
            else:
                check(opt.state[i][k], v.numpy(), f"state[{i}][{k!r}]")


@classes
def test_to_torch_has_torchs_keys(cls):
    torch = pytest.importorskip("torch")
    params = make_params(np.float32)
    tparams = [torch.from_numpy(p.copy(order="K")) for p in params]
    opt, topt = make_opt(cls, params, "numpy"), torch_opt(torch, cls, tparams)
    for g in grad_steps(params, 2, seed=1):
        opt.step(g)
        torch_step(torch, topt, tparams, g)
    ours, theirs = torch_state.to_torch_state_dict(opt), topt.state_dict()
    assert list(ours) == list(theirs)
    assert ours["param_groups"] == theirs["param_groups"]  # the same keys and values
    assert sorted(ours["state"]) == sorted(theirs["state"])
    for i, st in theirs["state"].items():
        assert list(ours["state"][i]) == list(st)
        for k, v in st.items():
            assert (type(ours["state"][i][k]), ours["state"][i][k].dtype,
                    ours["state"][i][k].shape) == (type(v), v.dtype, v.shape), (i, k)


@impls
@dtypes
@classes
def test_adamcore_to_torch_continues(cls, dtype, impl):
    torch = pytest.importorskip("torch")
    params = make_params(dtype)
    opt = make_opt(cls, params, impl)
    for g in grad_steps(params, 5, seed=1):
        opt.step(g)
    tparams = [torch.from_numpy(p.copy(order="K")) for p in params]
    topt = torch_opt(torch, cls, tparams)
    topt.load_state_dict(torch_state.to_torch_state_dict(opt))
    assert_same_as_torch(opt, topt, tparams)
    for g in grad_steps(params, 5, seed=2):
        opt.step(g)
        torch_step(torch, topt, tparams, g)
    assert_same_as_torch(opt, topt, tparams, **TOL[dtype])


@impls
@dtypes
@classes
def test_torch_to_adamcore_continues(cls, dtype, impl):
    torch = pytest.importorskip("torch")
    tparams = [torch.from_numpy(p) for p in make_params(dtype)]
    topt = torch_opt(torch, cls, tparams)
    for g in grad_steps(make_params(dtype), 5, seed=1):
        torch_step(torch, topt, tparams, g)
    params = [tp.numpy().copy(order="K") for tp in tparams]
    opt = make_opt(cls, params, impl)
    opt.param_groups[0]["lr"] = 0.5  # replaced by torch's
    torch_state.from_torch_state_dict(opt, topt.state_dict())
    assert options(opt) == options(make_opt(cls, params, impl))
    assert all(type(st["step"]) is int for st in opt.state.values())
    assert_same_as_torch(opt, topt, tparams)
    for g in grad_steps(params, 5, seed=2):
        opt.step(g)
        torch_step(torch, topt, tparams, g)
    assert_same_as_torch(opt, topt, tparams, **TOL[dtype])


@pytest.mark.parametrize("with_torch", [True, False], ids=["tensors", "no-torch"])
@impls
def test_torch_layout_round_trip_is_bitwise(impl, with_torch, monkeypatch):
    """adamcore -> torch layout -> adamcore changes no bit; without torch the
    same layout holds NumPy arrays. torch-only group keys are dropped."""
    if with_torch:
        pytest.importorskip("torch")
    else:
        monkeypatch.setitem(sys.modules, "torch", None)  # import torch fails
    params = make_params(np.float64)
    opt = make_opt(adamcore.AdamW, params, impl)
    for g in grad_steps(params, 3, seed=1):
        opt.step(g)
    sd = torch_state.to_torch_state_dict(opt)
    step = sd["state"][0]["step"]
    assert (type(step).__module__.split(".")[0], str(step.dtype), tuple(step.shape)) == (
        ("torch", "torch.float32", ()) if with_torch else ("numpy", "float32", ()))
    sd["param_groups"][0]["initial_lr"] = 0.01  # as torch's LR schedulers leave it
    other = make_opt(adamcore.AdamW, copies(params), impl)
    torch_state.from_torch_state_dict(other, sd)
    for g in grad_steps(params, 3, seed=2):
        opt.step(g)
        other.step(g)
    assert_optimizers_equal(other, opt)


def test_to_torch_refuses_keras_eps_mode():
    opt = make_opt(adamcore.Adam, make_params(np.float32), "numpy", eps_mode="keras")
    with pytest.raises(ValueError, match=r"param group 1 has eps_mode='keras', which "
                                         r"torch\.optim\.Adam cannot express"):
        torch_state.to_torch_state_dict(opt)


def _unknown_option(sd):
    sd["param_groups"][1]["nesterov"] = True


def _missing_option(sd):
    del sd["param_groups"][0]["lr"]


@pytest.mark.parametrize("edit, message", [
    (_unknown_option, r"param group 1 is not a torch Adam group: missing \[\], "
                      r"unknown \['nesterov'\]"),
    (_missing_option, r"param group 0 is not a torch Adam group: missing \['lr'\]"),
], ids=["unknown-option", "missing-option"])
def test_from_torch_refuses_other_groups_and_changes_nothing(edit, message, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    params = make_params(np.float32)
    opt = make_opt(adamcore.Adam, params, "numpy")
    for g in grad_steps(params, 2, seed=1):
        opt.step(g)
    sd = torch_state.to_torch_state_dict(opt)
    edit(sd)
    before, groups = optimizer_snapshot(opt), options(opt)
    with pytest.raises(ValueError, match=message):
        torch_state.from_torch_state_dict(opt, sd)
    assert_optimizer_snapshot_equal(optimizer_snapshot(opt), before)
    assert options(opt) == groups


@classes
def test_from_torch_without_decoupled_key_keeps_the_class_default(cls, monkeypatch):
    """Older torch has no decoupled_weight_decay key: the target's default holds."""
    monkeypatch.setitem(sys.modules, "torch", None)
    params = make_params(np.float32)
    sd = torch_state.to_torch_state_dict(make_opt(cls, params, "numpy"))
    for g in sd["param_groups"]:
        del g["decoupled_weight_decay"]
    opt = make_opt(cls, copies(params), "numpy")
    torch_state.from_torch_state_dict(opt, sd)
    assert [g["decoupled_weight_decay"] for g in opt.param_groups] == [cls is adamcore.AdamW] * 2
