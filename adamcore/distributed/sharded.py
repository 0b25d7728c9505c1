"""ShardedOptimizer: one adamcore optimizer's state split across MPI ranks
(ZeRO stages 1 and 2), bitwise the single-process step.

Layers: the params are views into one FlatParams buffer, cut into shards
(adamcore.distributed.layout); each rank holds an ordinary adamcore
optimizer (the **local optimizer**) over its pieces, with the user's groups
and options, so every kind, option and kernel works unchanged; the
collectives are adamcore.distributed.exchange; every check that could fail
on one rank only is agreed on (adamcore.distributed.agree) before anything
changes.
"""

import inspect
import json
import sys
import threading
import time

import numpy as np

from adamcore import _alloc, _impl, _validate, checkpoint, clip, reference
from adamcore._base import Optimizer
from adamcore.distributed.agree import agree, checked
from adamcore.distributed.exchange import Exchange
from adamcore.distributed.layout import ShardLayout
from adamcore.flat import FlatParams
from adamcore.kinds import KINDS

STAGES = (1, 2)
DEFAULT_BUCKET = 1 << 20


def mpi():
    """mpi4py's MPI module, or an ImportError that says how to get it."""
    try:
        from mpi4py import MPI
    except ImportError as exc:
        raise ImportError("adamcore.distributed needs mpi4py and an MPI library: "
                          "pip install 'adamcore[mpi]' (or mpi4py built against your "
                          "cluster's MPI: see adamcore.distributed)") from exc
    return MPI


def _abort_on_uncaught_exception(MPI):
    """Make an exception that ends this process abort the whole MPI job.

    Without it, a rank that raises runs Python's exit, whose MPI_Finalize
    waits for ranks that wait in a collective for it: the job hangs
    (tried: 3 ranks, one raising mid-run, hung until killed). A rank that
    exits or is killed already ends the job (mpiexec tears it down). The
    hook prints the traceback first; ``python -m mpi4py train.py`` does the
    same for the whole script."""
    previous = sys.excepthook
    if getattr(previous, "adamcore_aborts", False):
        return

    def hook(kind, value, tb):
        previous(kind, value, tb)
        sys.stderr.flush()
        MPI.COMM_WORLD.Abort(1)

    hook.adamcore_aborts = True
    sys.excepthook = hook


def _fold(sums):
    """The block sums added one at a time in order, as the norm kernel adds
    them (np.add.accumulate is sequential; NumPy's sum is pairwise)."""
    return float(np.add.accumulate(sums)[-1]) if sums.size else 0.0


class ShardedOptimizer:
    """``optimizer_class`` (Adam, AdamW, SGD, RMSprop, Adagrad, AdaBelief)
    over the params of ``params`` (an adamcore.FlatParams), its state split
    across the ranks of ``comm`` (default ``MPI.COMM_WORLD``)::

        fp = adamcore.FlatParams({"w1": w1, "b1": b1, "w2": w2, "b2": b2})
        opt = ShardedOptimizer(adamcore.AdamW, fp, lr=1e-3, weight_decay=1e-2)
        for x, y in my_batches:                 # each rank its own data
            backward(fp.params, x, y, out=fp.grads)
            opt.step()                          # fp.flat_grad: this rank's grads

    A step: every rank's full-size local grads -> a reproducible
    reduce-scatter (Alltoall, then a sum in rank order) times ``1/P``
    (``average=True``; ``average=False`` sums) -> the fused kernel on this
    rank's shard -> an Allgather of the updated params into ``fp.flat`` on
    every rank. The params, the state and the step counts are then bitwise
    those of one process running ``optimizer_class`` over the same params
    and groups on ``(g_0 + g_1 + ... + g_{P-1}) * dtype(1/P)``, added left to
    right in rank order, whatever P, thread count or SIMD level.

    - ``groups``: param groups as lists of ``params``' names (or indices),
      each with its own options, e.g. ``[{"params": ["w1", "w2"]},
      {"params": ["b1", "b2"], "weight_decay": 0.0}]``; every param in
      exactly one group. Default: one group of all, in FlatParams' order.
    - ``stage=1``: the reduced grads are all-gathered too, so
      ``reduced_grad`` holds the full averaged gradient on every rank (ZeRO
      stage 1: state sharded, gradients not). ``stage=2``: each rank keeps
      only its shard of them (``reduced_grad`` is shard-sized) and sends a
      third less.
    - ``bucket``: elements per rank pair per Alltoall round; the extra memory
      of the exchange is one P x bucket receive buffer.
    - ``max_grad_norm`` and ``skip_nonfinite`` as on every optimizer: the norm
      of the reduced grads, from every rank's block sums folded in the
      single-process order, the same on every rank.
    - ``param_groups``, ``defaults``, ``lock`` and the schedules work as on a
      single-process optimizer; ``state_dict``, ``load_state_dict``, ``save``
      and ``load`` are collective and hold global, unsharded arrays, so a
      checkpoint saved at P ranks loads at any other P and into a
      single-process optimizer (and back).

    Every call that communicates is collective: every rank makes it, in the
    same order. A check that fails on one rank (a bad grad, a bad option)
    raises the same error on every rank with nothing changed anywhere. An
    exception that ends one rank's script aborts the whole job
    (``abort_on_exception=True``, for more than one rank: a ``sys.excepthook``
    that calls ``MPI.COMM_WORLD.Abort``), where it would otherwise hang
    the other ranks in their next collective.
    """

    def __init__(self, optimizer_class, params, comm=None, *, groups=None, stage=1,
                 average=True, bucket=DEFAULT_BUCKET, max_grad_norm=None,
                 skip_nonfinite=False, n_threads=None, impl="auto", abort_on_exception=True,
                 **options):
        MPI = mpi()
        comm = MPI.COMM_WORLD if comm is None else comm
        if not isinstance(comm, MPI.Comm):
            raise TypeError(f"comm must be an mpi4py communicator, got {type(comm).__name__}")
        self._mpi, self.comm = MPI, comm
        self.rank, self.n_ranks = comm.Get_rank(), comm.Get_size()
        if abort_on_exception and self.n_ranks > 1:
            _abort_on_uncaught_exception(MPI)
        self.lock = threading.RLock()
        self._ctor = dict(max_grad_norm=max_grad_norm, skip_nonfinite=skip_nonfinite,
                          n_threads=n_threads, impl=impl, **options)
        fingerprint, error = checked(self._check_local, optimizer_class, params, groups, stage,
                                     average, bucket)
        agree(MPI, comm, error, "ShardedOptimizer")
        prints = comm.allgather(fingerprint)
        for r, theirs in enumerate(prints):
            if theirs != prints[0]:
                key = next(k for k in prints[0] if prints[0][k] != theirs.get(k))
                raise ValueError(f"ShardedOptimizer: ranks disagree on {key}: rank 0 has "
                                 f"{prints[0][key]!r}, rank {r} has {theirs.get(key)!r}; every "
                                 "rank must build the same params, groups and options")
        self._build(bucket)

    # ---- construction -------------------------------------------------------

    def _check_local(self, optimizer_class, params, groups, stage, average, bucket):
        """Every argument checked on this rank (building the single-process
        optimizer over the same params and groups, which words option errors
        as it does); returns the layout fingerprint the ranks compare."""
        if not (isinstance(optimizer_class, type) and issubclass(optimizer_class, Optimizer)
                and optimizer_class.KIND in KINDS.values()):
            raise TypeError("optimizer_class must be an adamcore optimizer class with a dense "
                            "kernel (Adam, AdamW, SGD, RMSprop, Adagrad, AdaBelief), "
                            f"got {optimizer_class!r}")
        if not isinstance(params, FlatParams):
            raise TypeError("params must be an adamcore.FlatParams (the sharded params are "
                            f"views into its one buffer), got {type(params).__name__}")
        if stage not in STAGES or isinstance(stage, bool):
            raise ValueError(f"stage must be 1 or 2, got {stage!r}")
        if not isinstance(average, (bool, np.bool_)):
            raise TypeError(f"average must be a bool, got {type(average).__name__}")
        if isinstance(bucket, bool) or not isinstance(bucket, int) or bucket < 1:
            raise ValueError(f"bucket must be an int >= 1 (elements), got {bucket!r}")
        self.optimizer_class, self.params, self.stage = optimizer_class, params, stage
        self.average = bool(average)
        self._keys = self._group_keys(params, groups)
        views = [[params[k] for k in keys] for keys, _ in self._keys]
        # The single-process optimizer over the same params: it checks the
        # options, and its groups are this optimizer's (what schedules write).
        self._global = optimizer_class([{**opts, "params": v} for (_, opts), v
                                        in zip(self._keys, views)], **self._ctor)
        order = [p for v in views for p in v]
        return {"optimizer": optimizer_class.__name__, "dtype": str(params.flat.dtype),
                "shapes": [list(p.shape) for p in order],
                "groups": [list(keys) for keys, _ in self._keys],
                "options": json.dumps(self._options(), default=checkpoint._plain, sort_keys=True),
                "stage": stage, "average": self.average, "bucket": bucket}

    @staticmethod
    def _group_keys(fp, groups):
        """[(names, options)] per group; every name of ``fp`` exactly once."""
        names = list(fp)
        if groups is None:
            return [(names, {})]
        if not isinstance(groups, list) or not groups:
            raise TypeError("groups must be a non-empty list of dicts {'params': [names], ...}")
        seen, out = set(), []
        for gi, group in enumerate(groups):
            if not isinstance(group, dict) or not isinstance(group.get("params"), (list, tuple)):
                raise TypeError(f"groups[{gi}] must be a dict whose 'params' is a list of "
                                "the FlatParams' names")
            for key in group["params"]:
                if key not in names:
                    raise ValueError(f"groups[{gi}] names {key!r}, which is not a param of "
                                     f"params (names: {names})")
                if key in seen:
                    raise ValueError(f"param {key!r} is in more than one group")
                seen.add(key)
            out.append((list(group["params"]), {k: v for k, v in group.items() if k != "params"}))
        missing = [k for k in names if k not in seen]
        if missing:
            raise ValueError(f"params {missing} are in no group; every param of a sharded "
                             "optimizer is in one group")
        return out

    def _options(self):
        return {"defaults": self._global.defaults,
                "groups": [{k: v for k, v in g.items() if k != "params"}
                           for g in self._global.param_groups],
                "max_grad_norm": self.max_grad_norm, "skip_nonfinite": self.skip_nonfinite}

    def _build(self, bucket):
        fp, g = self.params, self._global
        flat = fp.flat
        base = flat.__array_interface__["data"][0]
        self._order = [p for group in g.param_groups for p in group["params"]]
        spans = [((p.__array_interface__["data"][0] - base) // flat.itemsize, p.size)
                 for p in self._order]
        self.layout = ShardLayout.build(spans, flat.size, self.n_ranks, flat.itemsize)
        self.shard = self.layout.shard(self.rank)
        self.pieces = self.layout.pieces(self.rank)
        lo, hi = self.shard
        impl = g.impl
        kernel = _impl.kernel() if impl == "c" else None
        self._block_sums = kernel.grad_block_sums if kernel else (
            lambda arrays, n_threads: reference.grad_block_sums(arrays))
        rank_sum = kernel.rank_sum if kernel else (
            lambda recv, out, scale, n_threads: reference.rank_sum(recv, out, scale))
        if self.n_ranks == 1:  # no exchange: the grads are the reduced grads
            self.reduced_grad = None
        elif self.stage == 1:
            self.reduced_grad = _alloc.aligned_zeros(flat.size, flat.dtype)
        else:
            self.reduced_grad = _alloc.aligned_zeros(hi - lo, flat.dtype)
        self._shard_grad = (None if self.reduced_grad is None else
                            self.reduced_grad[lo:hi] if self.stage == 1 else self.reduced_grad)
        self.exchange = Exchange(self._mpi, self.comm, self.layout, flat.dtype, bucket, rank_sum)
        # The local optimizer: the same groups and options over this rank's pieces.
        by_param = {piece.param: piece for piece in self.pieces}
        inner_groups, self._inner_pieces, i = [], [], 0
        for group in g.param_groups:
            views = []
            for p in group["params"]:
                piece = by_param.get(i)
                if piece is not None:
                    views.append(flat[piece.flat:piece.flat + piece.size])
                    self._inner_pieces.append(piece)
                i += 1
            inner_groups.append({**{k: v for k, v in group.items() if k != "params"},
                                 "params": views})
        ctor = {k: v for k, v in self._ctor.items() if k not in ("max_grad_norm", "skip_nonfinite")}
        self.local_optimizer = self.optimizer_class(inner_groups, **ctor)
        self._grad_views = (None if self._shard_grad is None else
                            [self._shard_grad[pc.flat - lo:pc.flat - lo + pc.size]
                             for pc in self._inner_pieces])
        self._steps = np.zeros(len(self._order), np.int64)
        self._has_state = np.zeros(len(self._order), bool)
        self.skipped_steps = 0
        self.last_grad_norm = None

    # ---- what a user reads ----------------------------------------------------

    @property
    def param_groups(self):
        """The groups, with the full params: what schedules read and write."""
        return self._global.param_groups

    @property
    def defaults(self):
        return self._global.defaults

    @property
    def max_grad_norm(self):
        return self._ctor["max_grad_norm"]

    @property
    def skip_nonfinite(self):
        return self._ctor["skip_nonfinite"]

    @property
    def state_bytes(self):
        """Bytes of optimizer state this rank holds."""
        return sum(a.nbytes for st in self.local_optimizer._arrays if st for a in st.values())

    @property
    def stats(self):
        """This rank's StepStats: bytes sent, seconds per collective and in the kernel."""
        return self.exchange.stats

    # ---- stepping -------------------------------------------------------------

    def step(self, grads=None):
        """One collective step on every rank's ``grads`` (default: the
        FlatParams' ``flat_grad``; else a 1-D array laid out like ``flat``).
        Returns True, or False on every rank when ``skip_nonfinite`` found a
        NaN or inf in the reduced grads (nothing changed; ``skipped_steps``
        counts these)."""
        with self.lock:
            grads = self.params.flat_grad if grads is None else grads
            _, error = checked(self._check_step, grads)
            agree(self._mpi, self.comm, error, "step refused")
            self._sync_options()
            nt = self.local_optimizer.n_threads
            lo, hi = self.shard
            if self.reduced_grad is None:
                grad_views = [grads[pc.flat:pc.flat + pc.size] for pc in self._inner_pieces]
            else:
                scale = (1.0 / self.n_ranks) if self.average else 1.0
                self.exchange.reduce_scatter(grads, self._shard_grad, scale, nt)
                grad_views = self._grad_views
            scale = 1.0
            if self.max_grad_norm is not None or self.skip_nonfinite:
                scale = self._clip_scale(grad_views, nt)
                if scale is None:
                    return False
            t0 = time.perf_counter()
            self.local_optimizer._step_scaled(grad_views, scale)
            self.exchange.stats.kernel_seconds += time.perf_counter() - t0
            if self.n_ranks > 1:
                self.exchange.allgather(self.params.flat)
                if self.stage == 1:
                    self.exchange.allgather(self.reduced_grad)
            self.exchange.stats.steps += 1
            self._steps += 1
            self._has_state[:] = True
            return True

    def _check_step(self, grads):
        flat = self.params.flat
        if not isinstance(grads, np.ndarray):
            raise TypeError(f"grads must be a numpy.ndarray laid out like the FlatParams' flat "
                            f"(or None for its flat_grad), got {type(grads).__name__}")
        if grads.dtype != flat.dtype or grads.shape != flat.shape:
            raise ValueError(f"grads must be a 1-D {flat.dtype} array of {flat.size} elements "
                             f"laid out like flat, got {grads.dtype} of shape {grads.shape}")
        if not grads.flags.c_contiguous or not grads.flags.aligned:
            raise ValueError("grads must be C-contiguous and aligned")
        for name, a in (("the params", flat), ("reduced_grad", self.reduced_grad)):
            if a is not None and np.may_share_memory(grads, a):
                raise ValueError(f"grads overlap {name}, which the step writes")
        for group in self.param_groups:
            _validate.check_group(self.optimizer_class.KIND, group)

    def _sync_options(self):
        """The groups' options (a schedule may have changed them) into the
        local optimizer's groups."""
        for outer, inner in zip(self.param_groups, self.local_optimizer.param_groups):
            for k, v in outer.items():
                if k != "params" and inner[k] is not v:
                    inner[k] = v

    def _clip_scale(self, grad_views, n_threads):
        sums, nonfinite = self._block_sums(list(grad_views), n_threads)
        if self.n_ranks == 1:
            sumsq = _fold(sums)
        else:
            sumsq, nonfinite = self.exchange.norm(sums, nonfinite, _fold)
        return clip.step_scale(self, sumsq, nonfinite)

    # ---- state ---------------------------------------------------------------

    def _global_state(self, root):
        """{param index: {"step", key: global array}} on every rank (root
        None) or on ``root`` only (None elsewhere): one gather per state key."""
        kind, inner = self.optimizer_class.KIND, self.local_optimizer
        mine = {pc.param: sorted(st) for pc, st in zip(self._inner_pieces, inner._arrays)
                if st is not None}
        keys = {}
        for part in self.comm.allgather(mine):
            keys.update(part)
        for i, group in self._param_group_pairs():
            if self._has_state[i] and i not in keys:  # an empty param: no pieces anywhere
                keys[i] = sorted(kind.slots_used(group))
        flat, (lo, hi) = self.params.flat, self.shard
        full = {}
        for key in kind.slots:
            if not any(key in ks for ks in keys.values()):
                continue
            pack = np.zeros(hi - lo, flat.dtype)
            for pc, st in zip(self._inner_pieces, inner._arrays):
                if st is not None and key in st:
                    pack[pc.flat - lo:pc.flat - lo + pc.size] = st[key]
            out = np.empty(flat.size, flat.dtype) if root in (None, self.rank) else None
            recv = [out, (self.exchange.lengths, list(self.layout.bounds[:-1])),
                    self.exchange.datatype]
            if root is None:
                self.comm.Allgatherv(pack, recv)
            else:
                self.comm.Gatherv(pack, recv if out is not None else None, root=root)
            full[key] = out
        if root not in (None, self.rank):
            return None
        state = {}
        for i, p in enumerate(self._order):
            if self._has_state[i]:
                start = (p.__array_interface__["data"][0]
                         - flat.__array_interface__["data"][0]) // flat.itemsize
                state[i] = {"step": int(self._steps[i]),
                            **{k: full[k][start:start + p.size].reshape(p.shape)
                               for k in keys[i]}}
        return state

    def _param_group_pairs(self):
        i = 0
        for group in self.param_groups:
            for _ in group["params"]:
                yield i, group
                i += 1

    def state_dict(self):
        """The single-process ``state_dict()``, with global (unsharded)
        arrays, on every rank. Collective."""
        with self.lock:
            return {"state": self._global_state(None), "param_groups": checkpoint.saved_groups(self.param_groups)}

    def load_state_dict(self, state_dict):
        """Restore a ``state_dict()`` (from a sharded or a single-process
        optimizer over the same params and groups), given on every rank.
        Checked whole first, as the single-process optimizer checks it; any
        rank's refusal is every rank's, with nothing changed. Collective."""
        with self.lock:
            staged, error = checked(self._stage_load, state_dict)
            agree(self._mpi, self.comm, error, "load_state_dict refused")
            self._apply_load(*staged)

    def _stage_load(self, state_dict):
        """(the checked single-process optimizer holding the state, this
        rank's state_dict for the local optimizer)."""
        check = self.optimizer_class([dict(group) for group in self.param_groups], **self._ctor)
        check.load_state_dict(state_dict)
        index = {pc.param: k for k, pc in enumerate(self._inner_pieces)}
        local, groups, k = {}, [], 0
        for gi, group in enumerate(check.param_groups):
            n = len(self.local_optimizer.param_groups[gi]["params"])
            groups.append({**{o: v for o, v in group.items() if o != "params"},
                           "params": list(range(k, k + n))})
            k += n
        for i in check.state:
            st = check.state[i]
            if i in index:
                pc = self._inner_pieces[index[i]]
                local[index[i]] = {"step": st["step"],
                                   **{key: a.reshape(-1)[pc.lo:pc.hi] for key, a in st.items()
                                      if key != "step"}}
        return check, {"state": local, "param_groups": groups}

    def _apply_load(self, check, local):
        self.local_optimizer.load_state_dict(local)
        for outer, new in zip(self.param_groups, check.param_groups):
            outer.update({k: v for k, v in new.items() if k != "params"})
        state = check.state
        self._has_state[:] = [i in state for i in range(len(self._order))]
        self._steps[:] = [state[i]["step"] if i in state else 0 for i in range(len(self._order))]

    # ---- checkpoints ------------------------------------------------------------

    def save(self, path):
        """Write a checkpoint of the single-process format (adamcore.checkpoint):
        rank 0 gathers the global state and writes it atomically, with the
        layout it was sharded by in the metadata. Collective."""
        with self.lock:
            state = self._global_state(0)
            error = None
            if self.rank == 0:
                layout = {"n_ranks": self.n_ranks, "bounds": list(self.layout.bounds),
                          "stage": self.stage}
                _, error = _checked_io(checkpoint.write, path, self.optimizer_class.__name__,
                                       self.defaults, self._order, checkpoint.saved_groups(self.param_groups),
                                       state, layout)
            agree(self._mpi, self.comm, error, f"save({path!r}) failed")

    @classmethod
    def load(cls, path, optimizer_class, params, comm=None, *, groups=None, **kwargs):
        """A ShardedOptimizer over ``params`` restored from a checkpoint of
        ``save`` or of a single-process ``optimizer_class.save``, at any number
        of ranks: rank 0 reads the file and sends it to every rank. ``groups``
        default to the saved group sizes over the FlatParams' order; ``kwargs``
        are the constructor's other arguments (stage, bucket, n_threads, ...).
        A damaged or mismatched file raises ValueError on every rank."""
        MPI = mpi()
        comm = MPI.COMM_WORLD if comm is None else comm
        read, error = None, None
        if comm.Get_rank() == 0:
            read, error = _checked_io(_read_checkpoint, path, optimizer_class, kwargs)
        agree(MPI, comm, error, f"load({path!r}) refused")
        metadata, state_dict, defaults = comm.bcast(read, root=0)
        if groups is None and isinstance(params, FlatParams):
            names, groups, lo = list(params), [], 0
            sizes = [len(g["params"]) for g in metadata["param_groups"]]
            if sum(sizes) != len(names):
                raise ValueError(f"{path}: the checkpoint holds {sum(sizes)} params, "
                                 f"params has {len(names)}")
            for n in sizes:
                groups.append({"params": names[lo:lo + n]})
                lo += n
        accepted = inspect.signature(optimizer_class).parameters
        opt = cls(optimizer_class, params, comm, groups=groups, **kwargs,
                  **{k: v for k, v in defaults.items() if k in accepted})
        if json.loads(json.dumps(opt.defaults, default=checkpoint._plain)) != defaults:
            raise ValueError(f"{path}: the checkpoint's defaults {defaults} are not those of "
                             f"a {optimizer_class.__name__}")
        checkpoint.check_params_fit(path, opt._order, metadata["params"])
        try:
            opt.load_state_dict(state_dict)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: {exc}") from exc
        return opt

    def __repr__(self):
        lo, hi = self.shard
        return (f"ShardedOptimizer({self.optimizer_class.__name__}, stage {self.stage}, "
                f"rank {self.rank} of {self.n_ranks}: elements [{lo}, {hi}) of "
                f"{self.layout.n}, {self.state_bytes} state bytes)")


def _read_checkpoint(path, optimizer_class, kwargs):
    metadata, state_dict = checkpoint.read(path)
    return metadata, state_dict, checkpoint.saved_defaults(optimizer_class, path, metadata,
                                                           kwargs)


def _checked_io(fn, *args):
    """Like agree.checked, but an OSError (a missing file, a full disk) is
    reported too: it is one rank's, and every rank must hear of it."""
    try:
        return fn(*args), None
    except (TypeError, ValueError, OSError) as exc:
        return None, exc


