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
from adamcore.distributed import state as shard_state
from adamcore.distributed.agree import agree, checked, digest
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
      The groups are fixed at construction (they set the layout): there is
      no ``add_param_group``.
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
    - ``param_groups``, ``defaults``, ``max_grad_norm``, ``skip_nonfinite``,
      ``lock`` and the schedules work as on a single-process optimizer, and
      every rank must keep them equal (each step compares a digest of them);
      ``state_dict``, ``load_state_dict``, ``save`` and ``load`` are
      collective and hold global, unsharded arrays, so a checkpoint saved at
      P ranks loads at any other P and into a single-process optimizer (and
      back). ``local_optimizer`` is this rank's optimizer over its pieces,
      ``state_bytes`` what it holds, ``stats`` the time and bytes of the
      steps' parts. At one rank there is no exchange and ``reduced_grad``
      is None: the grads are the reduced grads.

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
        # A communicator of its own: two optimizers stepped from two threads
        # must not interleave their collectives on the user's (MPI matches
        # collectives by order per communicator).
        self.mpi, self.comm = MPI, comm.Dup()
        self.rank, self.n_ranks = comm.Get_rank(), comm.Get_size()
        if abort_on_exception and self.n_ranks > 1:
            _abort_on_uncaught_exception(MPI)
        self.lock = threading.RLock()
        self.max_grad_norm, self.skip_nonfinite = max_grad_norm, skip_nonfinite
        self._ctor = dict(max_grad_norm=max_grad_norm, skip_nonfinite=skip_nonfinite,
                          n_threads=n_threads, impl=impl, **options)
        fingerprint, error = checked(self._check_local, optimizer_class, params, groups, stage,
                                     average, bucket)
        agree(MPI, comm, error, "ShardedOptimizer")
        prints = comm.allgather(fingerprint)
        for r, theirs in enumerate(prints):
            if theirs != prints[0]:
                key = next(k for k in prints[0] if prints[0][k] != theirs.get(k))
                if key == "param values":
                    raise ValueError("ShardedOptimizer: the params' values differ between rank 0 "
                                     f"and rank {r}; initialise them identically on every rank "
                                     "(the same seed, or comm.Bcast(fp.flat, root=0))")
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
        # A shard's pieces would round and block their state by piece, not by
        # param: the result would depend on the process count.
        if any(g.get("state_dtype") is not None for g in [self._ctor, *(groups or [])]
               if isinstance(g, dict)):
            raise ValueError("state_dtype must be None for a ShardedOptimizer: low-precision "
                             "state is single-process for now")
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
        self.global_optimizer = optimizer_class([{**opts, "params": v} for (_, opts), v
                                        in zip(self._keys, views)], **self._ctor)
        order = [p for v in views for p in v]
        return {"optimizer": optimizer_class.__name__, "dtype": str(params.flat.dtype),
                "shapes": [list(p.shape) for p in order],
                "groups": [list(keys) for keys, _ in self._keys],
                "options": json.dumps(self._options(), default=checkpoint._plain, sort_keys=True),
                "stage": stage, "average": self.average, "bucket": bucket,
                "param values": digest(params.flat)}

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
        return {"defaults": self.global_optimizer.defaults,
                "groups": [{k: v for k, v in g.items() if k != "params"}
                           for g in self.global_optimizer.param_groups],
                "max_grad_norm": self._ctor["max_grad_norm"],
                "skip_nonfinite": self._ctor["skip_nonfinite"]}

    def _build(self, bucket):
        fp, g = self.params, self.global_optimizer
        flat = fp.flat
        base = flat.__array_interface__["data"][0]
        self.param_order = [p for group in g.param_groups for p in group["params"]]
        spans = [((p.__array_interface__["data"][0] - base) // flat.itemsize, p.size)
                 for p in self.param_order]
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
        self.exchange = Exchange(self.mpi, self.comm, self.layout, flat.dtype, bucket, rank_sum)
        # The local optimizer: the same groups and options over this rank's pieces.
        by_param = {piece.param: piece for piece in self.pieces}
        inner_groups, self.pieces_in_order, i = [], [], 0
        for group in g.param_groups:
            views = []
            for p in group["params"]:
                piece = by_param.get(i)
                if piece is not None:
                    views.append(flat[piece.flat:piece.flat + piece.size])
                    self.pieces_in_order.append(piece)
                i += 1
            inner_groups.append({**{k: v for k, v in group.items() if k != "params"},
                                 "params": views})
        ctor = {k: v for k, v in self._ctor.items() if k not in ("max_grad_norm", "skip_nonfinite")}
        self.local_optimizer = self.optimizer_class(inner_groups, **ctor)
        self._grad_views = (None if self._shard_grad is None else
                            [self._shard_grad[pc.flat - lo:pc.flat - lo + pc.size]
                             for pc in self.pieces_in_order])
        self.steps = np.zeros(len(self.param_order), np.int64)   # per param, global order
        self.has_state = np.zeros(len(self.param_order), bool)
        # Params of no elements are in no shard: the keys their (empty) state
        # would have in one process, for state_dict.
        self._option_keys = sorted(self.defaults)  # what a group's step reads
        self._last_options = (None, None)          # (values, their digest)
        self.empty_keys = {i: set() for i, p in enumerate(self.param_order) if p.size == 0}
        self._group_of = [gi for gi, group in enumerate(g.param_groups) for _ in group["params"]]
        self.skipped_steps = 0
        self.last_grad_norm = None

    # ---- what a user reads ----------------------------------------------------

    @property
    def param_groups(self):
        """The groups, with the full params: what schedules read and write."""
        return self.global_optimizer.param_groups

    @property
    def defaults(self):
        return self.global_optimizer.defaults

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
            options, error = checked(self._check_step, grads)
            agree(self.mpi, self.comm, error, "step refused", value=options,
                  about="the param groups' options, max_grad_norm or skip_nonfinite")
            self._sync_options()
            nt = self.local_optimizer.n_threads
            if self.reduced_grad is None:
                grad_views = [grads[pc.flat:pc.flat + pc.size] for pc in self.pieces_in_order]
            else:
                scale = (1.0 / self.n_ranks) if self.average else 1.0
                self.exchange.reduce_scatter(grads, self._shard_grad, scale, nt)
                if self.stage == 1:  # every rank's reduced grads, a skipped step's too
                    self.exchange.allgather(self.reduced_grad)
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
            self.exchange.stats.steps += 1
            self.steps += 1
            self.has_state[:] = True
            kind = self.optimizer_class.KIND
            for i, keys in self.empty_keys.items():
                keys.update(kind.slots_used(self.param_groups[self._group_of[i]]))
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
        if self.steps.size and self.steps.max() == 2 ** 63 - 1:
            raise ValueError("a param has taken 2**63 - 1 steps; there is no next count")
        if self.max_grad_norm is not None and not _validate._real(
                "max_grad_norm", self.max_grad_norm) > 0:
            raise ValueError(f"max_grad_norm must be None or > 0, got {self.max_grad_norm!r}")
        keys = self._option_keys
        values = [[group[k] for k in keys] for group in self.param_groups]
        values.append([self.max_grad_norm, bool(self.skip_nonfinite)])
        if values != self._last_options[0]:  # JSON costs 10 us; the values rarely change
            self._last_options = (values, digest(values))
        return self._last_options[1]

    def _sync_options(self):
        """The groups' options (a schedule may have changed them) into the
        local optimizer's groups."""
        keys = self._option_keys
        for outer, inner in zip(self.param_groups, self.local_optimizer.param_groups):
            for k in keys:
                if inner[k] is not outer[k]:
                    inner[k] = outer[k]

    def _clip_scale(self, grad_views, n_threads):
        sums, nonfinite = self._block_sums(list(grad_views), n_threads)
        if self.n_ranks == 1:
            sumsq = _fold(sums)
        else:
            sumsq, nonfinite = self.exchange.norm(sums, nonfinite, _fold)
        return clip.step_scale(self, sumsq, nonfinite)

    # ---- state (adamcore.distributed.state) -------------------------------------

    def state_dict(self, root=None):
        """The single-process ``state_dict()``, with global (unsharded)
        arrays: on every rank, or with ``root`` (torch ZeRO's
        ``consolidate_state_dict(to=root)``) on that rank only, None on the
        others. Collective."""
        with self.lock:
            state = shard_state.global_state(self, root)
            if state is None:
                return None
            return {"state": state, "param_groups": checkpoint.saved_groups(self.param_groups)}

    def load_state_dict(self, state_dict):
        """Restore a ``state_dict()`` (of a sharded or a single-process
        optimizer over the same params and groups), the same one given on
        every rank. Checked whole first by the single-process optimizer's
        checks, without copying; any rank's refusal, or a difference between
        the ranks' copies, is every rank's ValueError, with nothing changed.
        Only this rank's pieces are copied in. Collective."""
        with self.lock:
            shard_state.load_state_dict(self, state_dict)

    def save(self, path):
        """Write a checkpoint of the single-process format (adamcore.checkpoint):
        rank 0 gathers the global state and writes it atomically, with the
        layout it was sharded by in the metadata. Collective."""
        with self.lock:
            shard_state.save(self, path)

    @classmethod
    def load(cls, path, optimizer_class, params, comm=None, *, groups=None, **kwargs):
        """A ShardedOptimizer over ``params`` restored from a checkpoint of
        ``save`` or of a single-process ``optimizer_class.save``, at any number
        of ranks: rank 0 reads the file, and each rank receives only its shard
        of the state. ``groups`` default to the saved group sizes over the
        FlatParams' order; ``kwargs`` are the constructor's other arguments
        (stage, bucket, max_grad_norm, n_threads, ...). A damaged or
        mismatched file raises ValueError on every rank. Collective."""
        MPI = mpi()
        comm = MPI.COMM_WORLD if comm is None else comm
        read, error = None, None
        if comm.Get_rank() == 0:
            read, error = checked(checkpoint.read, path)
        agree(MPI, comm, error, f"load({str(path)!r}) refused")
        metadata = comm.bcast(None if read is None else read[0], root=0)
        ctor, error = checked(_load_arguments, path, optimizer_class, metadata, params, groups,
                              kwargs)
        agree(MPI, comm, error, f"load({str(path)!r}) refused")
        defaults = ctor.pop("defaults")
        opt = cls(optimizer_class, params, comm, **ctor)
        # Deterministic from what every rank agreed on: the same verdict everywhere.
        if json.loads(json.dumps(opt.defaults, default=checkpoint._plain)) != defaults:
            raise ValueError(f"{path}: the checkpoint's defaults {defaults} are not those of a "
                             f"{optimizer_class.__name__}")
        checkpoint.check_params_fit(path, opt.param_order, metadata["params"])
        with opt.lock:
            shard_state.scatter_load(opt, None if read is None else read[1], path)
        return opt

    def __repr__(self):
        lo, hi = self.shard
        return (f"ShardedOptimizer({self.optimizer_class.__name__}, stage {self.stage}, "
                f"rank {self.rank} of {self.n_ranks}: elements [{lo}, {hi}) of "
                f"{self.layout.n}, {self.state_bytes} state bytes)")


def _load_arguments(path, optimizer_class, metadata, params, groups, kwargs):
    """The constructor's arguments for ``load``: the saved defaults (not also
    in ``kwargs``) and the groups, by default the saved group sizes over the
    FlatParams' order. ``defaults`` rides along for load's check."""
    defaults = checkpoint.saved_defaults(optimizer_class, path, metadata, kwargs)
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
    return {"groups": groups, **kwargs, **{k: v for k, v in defaults.items() if k in accepted},
            "defaults": defaults}
