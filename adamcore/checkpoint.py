"""Checkpoints: an optimizer to and from an ``.npz`` file (torch
``state_dict``s: adamcore.torch_state).

    opt.save("run/opt.npz")                        # hyperparameters, step counts, all state
    opt = adamcore.Adam.load("run/opt.npz", params, n_threads=4)

A restored optimizer continues bitwise identically to one that never stopped.

File format (version 1): an uncompressed ``.npz`` (``np.savez``, no pickled
objects) with these entries:

- ``metadata``: a 0-d string array holding JSON: ``format``
  ("adamcore-checkpoint"), ``version``, ``optimizer`` (the class name),
  ``defaults``, ``params`` (``{"shape", "dtype"}`` of each param, in order
  across groups), ``param_groups`` (each group's options and ``params``, the
  indices of its params, as in ``state_dict()``), ``state`` (the indices of
  the params that have state) and ``arrays`` (the names of the other entries);
- ``steps``: int64, the step count of each param listed in ``state``;
- ``state.{i}.{key}``: param i's ``exp_avg``, ``exp_avg_sq`` and, with
  AMSGrad, ``max_exp_avg_sq``; with ``state_dtype="int8"`` also each one's
  ``{key}_absmax`` and ``qmap`` (the id of the code maps, a 0-d string);
  bfloat16 state is stored as ``.npy``'s raw 2-byte type and read back as
  ``ml_dtypes.bfloat16`` (adamcore.qstate).

Design: the file is written to a temporary file in the target's directory,
flushed to disk, then renamed over the target (``os.replace``, atomic on POSIX
and Windows), so the target is at every moment either the old checkpoint or
the complete new one. Reading checks the zip CRC of every entry before
parsing, so a truncated or damaged file is refused as such instead of being
half-parsed (a damaged array header could otherwise ask for any size of
allocation). Loading goes through ``load_state_dict``, which checks everything
against the params before changing anything.
"""

import contextlib
import inspect
import json
import os
import secrets
import zipfile
import zlib

import numpy as np

from adamcore import qstate

__all__ = ["save", "load", "read", "write"]

FORMAT = "adamcore-checkpoint"
VERSION = 1

# Errors that reading a damaged file raises from zipfile, zlib and np.load
# (ValueError covers bad .npy headers, bad JSON and refused pickles).
_READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, OSError, KeyError, ValueError,
                NotImplementedError)


# ---- .npz files ------------------------------------------------------------------

def _plain(value):
    """JSON encoder hook: NumPy scalars (a float32 lr, an np.bool_ flag) as the
    Python number of the same value, so hyperparameters round-trip exactly."""
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value).__name__} {value!r} to a checkpoint")


def save(opt, path):
    """Write ``opt``'s hyperparameters, step counts and state to ``path``.

    The file is written to exactly ``path`` (``str`` or ``os.PathLike``); no
    ".npz" is appended, unlike ``np.savez`` given a file name. It replaces any
    file there atomically: a crash mid-write leaves the previous file intact
    and, at worst, a stray ``.<name>.*.tmp`` file beside it. The live state
    arrays are written as they are, without copies.
    """
    state = opt.state
    write(path, type(opt).__name__, opt.defaults, params_of(opt),
          saved_groups(opt.param_groups), {i: state[i] for i in sorted(state)})


def saved_groups(param_groups):
    """The groups as ``state_dict()`` holds them: the options, and ``params``
    the indices of the group's params in order across groups."""
    groups, lo = [], 0
    for group in param_groups:
        hi = lo + len(group["params"])
        groups.append({**{k: v for k, v in group.items() if k != "params"},
                       "params": list(range(lo, hi))})
        lo = hi
    return groups


def write(path, optimizer, defaults, params, param_groups, state, layout=None):
    """Write a checkpoint of the format above: ``optimizer`` the class name,
    ``params`` the params (or anything with their ``shape`` and ``dtype``),
    ``param_groups`` as ``state_dict()`` gives them, ``state`` ``{i: {"step":
    int, key: array}}``. ``layout`` (adamcore.distributed: how the state was
    sharded) is stored in the metadata for information; readers ignore it."""
    path = os.fspath(path)
    ids = sorted(state)
    metadata = {"format": FORMAT, "version": VERSION, "optimizer": optimizer,
                "defaults": defaults,
                "params": [{"shape": list(p.shape), "dtype": str(p.dtype)} for p in params],
                "param_groups": param_groups, "state": ids}
    if layout is not None:
        metadata["layout"] = layout
    arrays = {"steps": np.array([state[i]["step"] for i in ids], np.int64)}
    for i in ids:
        arrays.update({f"state.{i}.{k}": a for k, a in state[i].items() if k != "step"})
    # The entry list lets a reader tell an entry lost to damage from one never written.
    metadata["arrays"] = list(arrays)
    arrays["metadata"] = np.array(json.dumps(metadata, default=_plain))
    _write_atomically(path, arrays)


def _write_atomically(path, arrays):
    directory, name = os.path.split(os.path.abspath(path))
    # Not tempfile, whose files are private (0600): the checkpoint gets the
    # permissions any new file gets. "x" refuses a name that exists.
    tmp = os.path.join(directory, f".{name}.{secrets.token_hex(8)}.tmp")
    f = open(tmp, "xb")
    try:
        with f:
            np.savez(f, **arrays)  # a file object: np.savez adds no suffix
            f.flush()
            os.fsync(f.fileno())  # the data reaches the disk before the rename does
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory):
    # Makes the rename itself durable (POSIX). The new file is already in
    # place, so a file system that cannot sync a directory is no error.
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def load(cls, path, params, **kwargs):
    """``cls(params, **kwargs)`` restored from the checkpoint at ``path``.

    ``params`` are the arrays in the order they were saved: a flat list (split
    into the saved param groups) or a list of group dicts with the saved group
    sizes. Hyperparameters, step counts and state come from the file;
    ``kwargs`` are what it does not hold (``n_threads``, ``impl``).

    Raises ``ValueError`` naming ``path`` and the reason when the file is not
    a valid checkpoint (truncated, damaged, another format or version), was
    saved from another class (Adam and AdamW differ in their defaults, so one
    is not loaded as the other), or does not fit ``params`` (count, shape,
    dtype, group sizes). ``FileNotFoundError`` and other errors opening the
    file pass through unchanged.
    """
    metadata, state_dict = read(path)
    defaults = saved_defaults(cls, path, metadata, kwargs)
    sizes = [len(g["params"]) for g in metadata["param_groups"]]
    accepted = inspect.signature(cls).parameters  # AdamW fixes decoupled_weight_decay
    opt = cls(grouped(path, params, sizes), **kwargs,
              **{k: v for k, v in defaults.items() if k in accepted})
    if json.loads(json.dumps(opt.defaults, default=_plain)) != defaults:
        raise ValueError(f"{path}: the checkpoint's defaults {defaults} are not those of a "
                         f"{cls.__name__}")
    check_params_fit(path, params_of(opt), metadata["params"])
    try:
        opt.load_state_dict(state_dict)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
    return opt


def saved_defaults(cls, path, metadata, kwargs):
    """The checkpoint's defaults, checked to be ``cls``'s and not also in the
    constructor's ``kwargs``."""
    saved_cls = metadata["optimizer"]
    if saved_cls != cls.__name__:
        raise ValueError(f"{path}: saved from {saved_cls}, not {cls.__name__} (their "
                         f"defaults differ); load it with {saved_cls}.load")
    defaults = {**cls.ADDED_OPTIONS, **metadata["defaults"]}
    clash = sorted(set(kwargs) & set(defaults))
    if clash:
        raise TypeError(f"{cls.__name__}.load() takes {clash} from the checkpoint; "
                        "change param_groups after loading instead")
    return defaults


def params_of(opt):
    return [p for group in opt.param_groups for p in group["params"]]


def grouped(path, params, sizes):
    """A flat list of arrays split into groups of ``sizes``; anything else as
    it is (group dicts are checked by load_state_dict, a lone array or other
    wrong type by the constructor)."""
    if isinstance(params, np.ndarray):
        return params
    params = list(params)
    if params and isinstance(params[0], dict):
        return params
    if len(params) != sum(sizes):
        raise ValueError(f"{path}: the checkpoint holds {sum(sizes)} params, got {len(params)}")
    bounds = np.cumsum([0] + sizes)
    return [{"params": params[lo:hi]} for lo, hi in zip(bounds[:-1], bounds[1:])]


def check_params_fit(path, params, saved):
    """Every param has the saved shape and dtype, those without state included."""
    if len(params) != len(saved):
        raise ValueError(f"{path}: the checkpoint holds {len(saved)} params, got {len(params)}")
    for i, (p, s) in enumerate(zip(params, saved)):
        if list(p.shape) != s.get("shape") or str(p.dtype) != s.get("dtype"):
            raise ValueError(f"{path}: params[{i}] is a {p.dtype} array of shape {p.shape}; "
                             f"the checkpoint was saved with a {s.get('dtype')} array of "
                             f"shape {tuple(s.get('shape') or ())}")


def read(path):
    """(metadata, state_dict) from the file at ``path``."""
    with open(path, "rb") as f:  # a missing or unreadable file is the caller's error
        try:
            return _parse(f)
        except _READ_ERRORS as exc:
            reason = str(exc) or type(exc).__name__
            raise ValueError(f"{path}: not a valid adamcore checkpoint: {reason}") from exc


def _parse(f):
    with zipfile.ZipFile(f) as archive:
        damaged = archive.testzip()
    if damaged is not None:
        raise ValueError(f"entry {damaged!r} is damaged")
    f.seek(0)
    npz = np.load(f, allow_pickle=False)
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ValueError("not an .npz archive")
    with npz:
        names = set(npz.files)
        if "metadata" not in names:
            raise ValueError("no 'metadata' entry")
        metadata = _metadata(npz["metadata"])
        missing = sorted(set(metadata["arrays"]) - names)
        unexpected = sorted(names - set(metadata["arrays"]) - {"metadata"})
        if missing or unexpected:
            raise ValueError(f"entries missing: {missing}, unexpected: {unexpected}")
        ids = metadata["state"]
        steps = npz["steps"]
        if steps.dtype != np.int64 or steps.shape != (len(ids),):
            raise ValueError(f"'steps' must be {len(ids)} int64 step counts, got "
                             f"{steps.dtype} array of shape {steps.shape}")
        state = {i: {"step": int(step)} for i, step in zip(ids, steps)}
        owner = {f"state.{i}": i for i in ids}
        for name in sorted(names - {"metadata", "steps"}):
            prefix, _, key = name.rpartition(".")
            if prefix not in owner:
                raise ValueError(f"entry {name!r} belongs to no param with state")
            a = npz[name]
            if a.dtype.kind == "V" and a.dtype.itemsize == 2:  # .npy keeps bfloat16 as raw V2
                a = a.view(qstate.bfloat16())
            state[owner[prefix]][key] = a
    return metadata, {"state": state, "param_groups": metadata["param_groups"]}


def _metadata(entry):
    """The metadata dict, its format, version and structure checked (the
    values are checked by load and load_state_dict)."""
    if entry.dtype.kind != "U" or entry.shape != ():
        raise ValueError("'metadata' is not a string")
    metadata = json.loads(entry.item())
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ValueError(f"metadata does not name the format {FORMAT!r}")
    if metadata.get("version") != VERSION:
        raise ValueError(f"format version {metadata.get('version')!r} is not supported "
                         f"(this adamcore reads version {VERSION})")
    params, groups = metadata.get("params"), metadata.get("param_groups")
    ids, arrays = metadata.get("state"), metadata.get("arrays")

    def int_list(x):
        return isinstance(x, list) and all(type(i) is int for i in x)

    if not (isinstance(metadata.get("optimizer"), str)
            and isinstance(metadata.get("defaults"), dict)
            and isinstance(params, list) and all(isinstance(p, dict) for p in params)
            and isinstance(groups, list)
            and all(isinstance(g, dict) and int_list(g.get("params")) for g in groups)
            and int_list(ids)
            and isinstance(arrays, list) and all(isinstance(a, str) for a in arrays)):
        raise ValueError("metadata lacks or garbles 'optimizer', 'defaults', 'params', "
                         "'param_groups', 'state' or 'arrays'")
    if sum(len(g["params"]) for g in groups) != len(params):
        raise ValueError(f"metadata lists {len(params)} params but its groups hold "
                         f"{sum(len(g['params']) for g in groups)}")
    return metadata
