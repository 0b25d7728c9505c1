"""A sharded optimizer's state as global arrays, and back.

Out: each state key's shards gathered (to every rank, or to rank 0 for a
checkpoint) into one flat buffer, then cut into the params' global arrays:
the single-process ``state_dict`` and checkpoint format, whatever P.

In: a global state_dict is checked whole, on every rank, by the
single-process optimizer's own checks (``checked_state_dict``, which copies
nothing), and only this rank's pieces are copied into its local optimizer,
so loading needs no more memory than the shard. From a checkpoint, rank 0
reads the file and scatters each key's flat buffer, so other ranks never
hold more than their shard.
"""

from dataclasses import dataclass

import numpy as np

from adamcore import checkpoint
from adamcore.distributed.agree import agree, checked, digest


@dataclass
class Staged:
    """A state to load, checked: per group its options, per param its step
    count (0 without state), whether it has state and its keys; this rank's
    state_dict for its local optimizer; a digest every rank compares."""

    options: list
    steps: list
    has_state: list
    keys: list
    local: dict
    digest: int


def _offset(opt, p):
    flat = opt.params.flat
    return (p.__array_interface__["data"][0] - flat.__array_interface__["data"][0]) // flat.itemsize


def global_state(opt, root):
    """{param index: {"step", key: global array}} on every rank (``root``
    None) or on ``root`` only (None elsewhere): one gather per state key."""
    _, error = checked(_check_root, root, opt.n_ranks)
    agree(opt.mpi, opt.comm, error, "state_dict refused", value=digest(root),
          about="root")
    kind, inner = opt.optimizer_class.KIND, opt.local_optimizer
    mine = {pc.param: sorted(st) for pc, st in zip(opt.pieces_in_order, inner._arrays)
            if st is not None}
    keys = {i: sorted(ks) for i, ks in opt.empty_keys.items() if opt.has_state[i]}
    for part in opt.comm.allgather(mine):
        keys.update(part)
    flat, (lo, hi) = opt.params.flat, opt.shard
    full = {}
    for key in kind.slots:
        if not any(key in ks for ks in keys.values()):
            continue
        pack = np.zeros(hi - lo, flat.dtype)
        for pc, st in zip(opt.pieces_in_order, inner._arrays):
            if st is not None and key in st:
                pack[pc.flat - lo:pc.flat - lo + pc.size] = st[key]
        out = np.empty(flat.size, flat.dtype) if root is None or root == opt.rank else None
        recv = [out, (opt.exchange.lengths, list(opt.layout.bounds[:-1])), opt.exchange.datatype]
        if root is None:
            opt.comm.Allgatherv(pack, recv)
        else:
            opt.comm.Gatherv(pack, recv if out is not None else None, root=root)
        full[key] = out
    if not (root is None or root == opt.rank):
        return None
    state = {}
    for i, p in enumerate(opt.param_order):
        if opt.has_state[i]:
            start = _offset(opt, p)
            state[i] = {"step": int(opt.steps[i]),
                        **{k: full[k][start:start + p.size].reshape(p.shape) for k in keys[i]}}
    return state


def _check_root(root, n_ranks):
    if root is not None and (isinstance(root, bool) or not isinstance(root, (int, np.integer))
                             or not 0 <= root < n_ranks):
        raise ValueError(f"root must be None or a rank in [0, {n_ranks}), got {root!r}")


def _local_state_dict(opt, options, steps, keys, piece_array):
    """The local optimizer's state_dict: its pieces of ``piece_array(piece,
    key)``, the groups' ``options``, the params' ``steps``."""
    groups, k = [], 0
    for gi, group_options in enumerate(options):
        n = len(opt.local_optimizer.param_groups[gi]["params"])
        groups.append({**group_options, "params": list(range(k, k + n))})
        k += n
    state = {}
    for k, pc in enumerate(opt.pieces_in_order):
        if keys[pc.param] is not None:
            state[k] = {"step": int(steps[pc.param]),
                        **{key: piece_array(pc, key) for key in keys[pc.param]}}
    return {"state": state, "param_groups": groups}


def stage(opt, state_dict):
    """``state_dict`` (global, on this rank) checked whole and cut to this
    rank's pieces, without copying."""
    groups, steps, arrays = opt.global_optimizer.checked_state_dict(state_dict)
    options = [{k: v for k, v in g.items() if k != "params"} for g in groups]
    keys = [None if st is None else sorted(st) for st in arrays]

    def piece_array(pc, key):
        a = np.asarray(arrays[pc.param][key])  # np.matrix would stay 2-D
        return a.reshape(-1)[pc.lo:pc.hi]  # a view for the C-contiguous arrays state_dict gives

    local = _local_state_dict(opt, options, steps, keys, piece_array)
    opt.local_optimizer.checked_state_dict(local)  # what apply will load: refused now, if ever
    value = digest(options, steps.tolist(), keys,
                   *[a for st in arrays if st is not None for _, a in sorted(st.items())])
    return Staged(options=options, steps=steps.tolist(), has_state=[k is not None for k in keys],
                  keys=keys, local=local, digest=value)


def apply(opt, staged):
    """Make ``staged`` the optimizer's state (after every rank agreed)."""
    opt.local_optimizer.load_state_dict(staged.local)
    for outer, options in zip(opt.param_groups, staged.options):
        outer.update(options)
    opt.steps[:] = staged.steps
    opt.has_state[:] = staged.has_state
    for i in opt.empty_keys:
        opt.empty_keys[i] = set(staged.keys[i] or ())


def load_state_dict(opt, state_dict):
    staged, error = checked(stage, opt, state_dict)
    agree(opt.mpi, opt.comm, error, "load_state_dict refused",
          value=None if staged is None else staged.digest, about="the state_dict's contents")
    apply(opt, staged)


def scatter_load(opt, state_dict, path):
    """Load ``state_dict``, which only rank 0 holds (read from ``path``):
    rank 0 checks it, every rank hears the verdict, and each state key's
    flat buffer is scattered so every rank receives only its shard."""
    staged, error = None, None
    if opt.rank == 0:
        staged, error = checked(stage, opt, state_dict)
    agree(opt.mpi, opt.comm, error, f"{path}")
    head = None if staged is None else (staged.options, staged.steps, staged.keys)
    options, steps, keys = opt.comm.bcast(head, root=0)
    # the saved id of each param, in order (checked_state_dict pairs them so)
    ids = ([pid for g in state_dict["param_groups"] for pid in g["params"]]
           if opt.rank == 0 else None)
    flat, (lo, hi) = opt.params.flat, opt.shard
    shards = {}
    for key in opt.optimizer_class.KIND.slots:
        owners = [i for i, ks in enumerate(keys) if ks is not None and key in ks]
        if not owners:
            continue
        full = None
        if opt.rank == 0:
            full = np.zeros(flat.size, flat.dtype)
            for i in owners:
                p = opt.param_order[i]
                start = _offset(opt, p)
                full[start:start + p.size] = state_dict["state"][ids[i]][key].reshape(-1)
        shards[key] = np.empty(hi - lo, flat.dtype)
        opt.comm.Scatterv([full, (opt.exchange.lengths, list(opt.layout.bounds[:-1])),
                           opt.exchange.datatype] if opt.rank == 0 else None,
                          shards[key], root=0)
    local = _local_state_dict(opt, options, steps, keys,
                              lambda pc, key: shards[key][pc.flat - lo:pc.flat - lo + pc.size])
    apply(opt, Staged(options=options, steps=steps, has_state=[k is not None for k in keys],
                      keys=keys, local=local, digest=0))


def save(opt, path):
    """Rank 0 gathers the global state and writes the single-process
    checkpoint format atomically, the layout in its metadata."""
    state = global_state(opt, 0)
    error = None
    if opt.rank == 0:
        layout = {"n_ranks": opt.n_ranks, "bounds": list(opt.layout.bounds), "stage": opt.stage}
        _, error = checked(checkpoint.write, path, opt.optimizer_class.__name__, opt.defaults,
                           opt.param_order, checkpoint.saved_groups(opt.param_groups), state,
                           layout)
    agree(opt.mpi, opt.comm, error, f"save({str(path)!r}) failed")
