"""adamcore's fused kernels behind ``torch.optim``'s API, for PyTorch CPU training.

    import adamcore.torch
    opt = adamcore.torch.AdamW(model.parameters(), lr=1e-3)   # was torch.optim.AdamW
    loss.backward(); opt.step(); opt.zero_grad()

Each class here is a ``torch.optim.Optimizer``: it reads ``p.grad``, keeps
torch's ``param_groups`` (so ``torch.optim.lr_scheduler`` drives it) and
torch's ``state`` layout and key names (``step`` a 0-d float tensor,
``exp_avg``, ...), so ``state_dict()`` loads into the torch class of the same
name and back. A step runs adamcore's kernel (one fused, GIL-free call per
dtype and step count) on zero-copy NumPy views of the CPU tensors, bitwise
equal to the NumPy-array optimizer of the same kind (adamcore.Adam, ...).

A tensor that cannot be updated in place (not on the CPU, not contiguous,
a dtype other than float32/float64, sparse, an inference tensor) is refused
with a clear error at construction or at the step that meets it: adamcore
never steps a copy, whose update would be lost. A grad is only read, so a
non-contiguous grad is read through a contiguous copy. The params' autograd
version counters are bumped after each step as an in-place torch op would,
so a backward through a graph that saved a param before the step still
raises torch's "modified by an inplace operation" error.

torch's switches for how its own step runs (``foreach``, ``fused``) are kept
in the groups and ignored; ``capturable`` and ``differentiable`` (CUDA
graphs, autograd through the step) are refused when true. ``n_threads`` and
``impl`` are adamcore's (see adamcore.Adam). Steps, ``state_dict``,
``load_state_dict`` and ``add_param_group`` hold the optimizer's ``lock``;
as torch's, ``state_dict()`` holds the live state tensors, so hold ``lock``
around it and ``torch.save`` to save while another thread steps.

Importing this module imports torch; ``import adamcore`` does not.
"""

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
import torch.optim.optimizer as _torch_optimizer
from torch.autograd.graph import increment_version

from adamcore import _impl, _validate, kinds
from adamcore.plan import Bucket

__all__ = ["AdaBelief", "Adagrad", "Adam", "AdamW", "Optimizer", "RMSprop", "SGD"]

_FLOAT_DTYPES = (torch.float32, torch.float64)
_TORCH_DTYPE = {"f": torch.float32, "d": torch.float64}  # a NumPy view's dtype.char
_REFUSED = ("capturable", "differentiable")
_NO_STATE = {}  # a param's state before its first step (never written)
_data_ptr = torch.Tensor.data_ptr


def _step_dtype():
    # torch's dtype for state["step"] (torch.optim.optimizer._get_scalar_dtype)
    return torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32


def _check_param(p, i):
    """The NumPy view of param ``p`` (params[i]), or a clear error."""
    name = f"params[{i}]"
    if p.layout != torch.strided:
        raise TypeError(f"{name} is a {p.layout} tensor; adamcore.torch steps dense tensors")
    if p.device.type != "cpu":
        raise ValueError(f"{name} is on {p.device}; adamcore.torch steps CPU tensors in place")
    if p.dtype not in _FLOAT_DTYPES:
        raise TypeError(f"{name} must have dtype torch.float32 or torch.float64, got {p.dtype}")
    if not p.is_contiguous():
        raise ValueError(f"{name} is not contiguous (strides {p.stride()}); adamcore updates "
                         "tensors in place and never steps a copy, whose update would be lost "
                         "(make the parameter contiguous, e.g. p.data = p.data.contiguous())")
    if p.is_inference():
        raise ValueError(f"{name} is an inference tensor, which cannot be updated in place "
                         "outside torch.inference_mode()")
    if p.is_neg():
        raise ValueError(f"{name} has its lazy negation bit set; call p.data = p.data.resolve_neg()")
    return p.detach().numpy()


def _check_state(t, key, p, i):
    """The NumPy view of state tensor ``t`` of params[i], or a clear error."""
    name = f"state of params[{i}][{key!r}]"
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.requires_grad or t.is_neg():
        raise ValueError(f"{name} must not require grad or carry a lazy negation")
    if key == "step":
        if t.shape != () or t.device.type != "cpu" or t.is_complex():
            raise ValueError(f"{name} must be a 0-d real CPU tensor, got shape "
                             f"{tuple(t.shape)} on {t.device}")
        value = t.item()
        if not (math.isfinite(value) and value >= 0 and value == int(value)):
            raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
        return t.numpy()
    if (t.layout != torch.strided or t.device != p.device or t.dtype != p.dtype
            or t.shape != p.shape or not t.is_contiguous()):
        raise ValueError(f"{name} must be a contiguous {p.dtype} CPU tensor of shape "
                         f"{tuple(p.shape)} like the param, got {t.dtype} of shape "
                         f"{tuple(t.shape)} on {t.device}")
    return t.detach().numpy()


def _grad_view(g, pv, i):
    """The NumPy view of params[i]'s grad (read only: a copy where needed);
    ``pv`` the param's view. Every step: one ``numpy()`` and three checks on
    its result; anything else takes the slow path, which words the error."""
    try:
        gv = g.numpy()  # refuses sparse, non-CPU and requires_grad tensors
    except (TypeError, RuntimeError):
        return _grad_view_slow(g, pv, i)
    if gv.dtype != pv.dtype or gv.shape != pv.shape or not gv.flags.c_contiguous:
        return _grad_view_slow(g, pv, i)
    return gv


def _grad_view_slow(g, pv, i):
    if g.layout is not torch.strided:
        raise TypeError(f"params[{i}].grad is a {g.layout} tensor; adamcore.torch takes dense "
                        "grads (for nn.Embedding(sparse=True) use torch.optim.SparseAdam)")
    if not g.is_cpu or g.dtype is not _TORCH_DTYPE[pv.dtype.char]:
        raise ValueError(f"params[{i}].grad must be a {_TORCH_DTYPE[pv.dtype.char]} CPU tensor "
                         f"like the param, got {g.dtype} on {g.device}")
    if tuple(g.shape) != pv.shape:
        raise ValueError(f"params[{i}].grad has shape {tuple(g.shape)}, the param {pv.shape}")
    # a copy only where needed (not contiguous, a lazy negation): a grad is only read
    return g.detach().resolve_neg().contiguous().numpy()


@dataclass(eq=False)
class _Views:
    """One param's (``tensor``) NumPy views: ``param``, ``step`` (0-d, or None where torch
    keeps no step) and ``slots``, the (slot number, view) pairs a bucket
    takes. Valid while the param's storage is at ``ptr``, its group needs
    the slots ``need`` and its state holds, under ``keys``, tensors over the
    memory at ``ptrs``: that of ``tensors``, kept alive here (so no other
    tensor's memory can start there); ``shape`` the param's.
    ``new``: tensors this step creates, entered into the state only when
    the step succeeds; ``first``: a state array among them (SGD starts its
    buffer at the grad)."""

    tensor: object
    ptr: int
    shape: tuple
    need: tuple
    param: np.ndarray
    step: object
    slots: tuple
    keys: tuple
    tensors: tuple
    ptrs: tuple
    new: dict
    first: bool


class Optimizer(torch.optim.Optimizer):
    """Base of the classes here: a subclass names its adamcore kind (``KIND``)
    and passes torch's defaults dict. ``STEP_KEY``: torch keeps a per-param
    ``step`` (its SGD does not); ``FIXED``: adamcore options torch's groups
    lack, at the value that computes what torch computes."""

    KIND = None
    STEP_KEY = True
    FIXED = {}

    def __init__(self, params, defaults, *, n_threads=None, impl="auto"):
        _validate.check_n_threads(n_threads)
        self._hyper(defaults)
        self.n_threads = n_threads
        self._impl_name = _impl.resolve(impl)
        self._step_buckets = _impl.bucket_stepper(self._impl_name)
        self.lock = threading.RLock()
        self._views = {}   # id(param) -> _Views (an int key: a tensor's hash is Python code)
        self._hypers = {}  # id(group) -> (its option values, group, hyper, slots needed)
        self._option_keys = (*self.KIND.group_keys(), *self.KIND.extra, *_REFUSED)
        super().__init__(params, defaults)

    @property
    def impl(self):
        """"c" or "numpy": the implementation chosen at construction."""
        return self._impl_name

    def __getstate__(self):
        return {**super().__getstate__(), "n_threads": self.n_threads,
                "_impl_name": self._impl_name}

    def __setstate__(self, state):
        super().__setstate__(state)
        for group in self.param_groups:  # groups saved before an option existed
            for key, value in self.defaults.items():
                group.setdefault(key, value)
        for entry in self.state.values():  # old torch checkpoints keep "step" as a number
            step = entry.get("step") if isinstance(entry, dict) else None
            if step is not None and not isinstance(step, torch.Tensor):
                entry["step"] = torch.tensor(float(step), dtype=_step_dtype())
        self._views, self._hypers = {}, {}
        if "lock" not in self.__dict__:  # unpickled; load_state_dict keeps the held lock
            self.lock = threading.RLock()
            self._step_buckets = _impl.bucket_stepper(self._impl_name)
            self._option_keys = (*self.KIND.group_keys(), *self.KIND.extra, *_REFUSED)

    def _hyper(self, group):
        """The group's adamcore hyper, checked (errors name the option)."""
        for key in _REFUSED:
            if group.get(key):
                raise ValueError(f"{key}=True is not supported by adamcore.torch "
                                 f"(its step runs on CPU tensors, outside autograd)")
        return _validate.check_group(self.KIND, {**self.FIXED, **group} if self.FIXED else group)

    def _hyper_and_slots(self, group):
        """(hyper, slots it needs) of a group, checked again only when one of
        the options it reads has another value (a schedule sets lr)."""
        values = tuple(tuple(v) if isinstance(v, (list, np.ndarray)) else v
                       for v in map(group.get, self._option_keys))
        cached = self._hypers.get(id(group))
        if cached is None or cached[0] != values or cached[1] is not group:
            hyper = self._hyper(group)
            cached = self._hypers[id(group)] = (values, group, hyper, self.KIND.required(hyper))
        return cached[2], cached[3]

    def add_param_group(self, param_group):
        """torch's add_param_group; the group's options and tensors are
        checked first, and a refused group is not added."""
        with self.lock:
            super().add_param_group(param_group)
            group = self.param_groups[-1]
            try:
                self._hyper(group)
                start = sum(len(g["params"]) for g in self.param_groups[:-1])
                views = [_check_param(p, start + k) for k, p in enumerate(group["params"])]
                earlier = [p.detach().numpy() for g in self.param_groups[:-1] for p in g["params"]]
                _validate.check_no_overlap([(f"params[{k}]", a)
                                            for k, a in enumerate(earlier + views)])
            except BaseException:
                self.param_groups.pop()
                raise

    def state_dict(self):
        with self.lock:
            return super().state_dict()

    def load_state_dict(self, state_dict):
        """torch's load_state_dict; the loaded state is then checked against
        the params, and a refused one leaves the optimizer as it was."""
        with self.lock:
            before = (self.state, self.param_groups)
            # torch runs the post-hooks inside its load: held back until the
            # loaded state has passed the checks, so that no hook sees a refused one
            hooks = self._optimizer_load_state_dict_post_hooks
            self._optimizer_load_state_dict_post_hooks = OrderedDict()
            try:
                super().load_state_dict(state_dict)
                self._views = {}
                self._check_loaded()
            except BaseException:
                self.state, self.param_groups = before
                raise
            finally:
                self._optimizer_load_state_dict_post_hooks = hooks
            for hook in hooks.values():
                hook(self)

    def _check_loaded(self):
        i = 0
        for group in self.param_groups:
            self._hyper(group)
            for p in group["params"]:
                state = self.state.get(p)
                if state is not None and not isinstance(state, dict):
                    raise TypeError(f"state of params[{i}] must be a dict, "
                                    f"got {type(state).__name__}")
                if state:
                    unknown = set(state) - set(self.KIND.slots) - {"step"}
                    if unknown:
                        raise ValueError(f"state of params[{i}] has unknown keys "
                                         f"{sorted(unknown)}; {type(self).__name__} keeps "
                                         f"{sorted(self.KIND.slots)}")
                    for key, t in state.items():
                        _check_state(t, key, p, i)
                i += 1

    # ---- stepping ----------------------------------------------------------

    def step(self, *args, **kwargs):
        """``step(closure=None)``: one step for every param whose ``.grad`` is
        not None (torch's semantics); ``closure`` re-evaluates the model and
        returns the loss."""
        # torch wraps step() in its hooks and a profiler label, which cost more
        # than a small adamcore step: that wrapper runs only when a hook is
        # registered or a profiler is on (see step.hooked below).
        # A subclass's own step() is wrapped by torch already: hooks run there, once.
        if type(self).step is Optimizer.step and (
                self._optimizer_step_pre_hooks or self._optimizer_step_post_hooks
                or _torch_optimizer._global_optimizer_pre_hooks
                or _torch_optimizer._global_optimizer_post_hooks
                or torch.autograd._profiler_enabled()):
            return _profiled_step(self, *args, **kwargs)  # hooks see the arguments as given
        return self._plain_step(*args, **kwargs)

    step.hooked = True  # torch's _patch_step_function leaves this step unwrapped

    def _plain_step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with self.lock:
            self._step()
        return loss

    def _step(self):
        kind, calls, stepped, i, last = self.KIND, {}, [], 0, None
        for gi, group in enumerate(self.param_groups):
            hyper, need = self._hyper_and_slots(group)
            for p in group["params"]:
                grad = p.grad
                if grad is not None:
                    views = self._views_of(p, i, need, group)
                    gv = _grad_view(grad, views.param, i)
                    step = 1 if views.step is None else int(views.step) + 1
                    key = (gi, views.param.dtype, step, views.first)
                    if key != last:  # the bucket of the param before, most often
                        call, last = calls.get(key), key
                        if call is None:
                            call = calls[key] = Bucket(
                                kind, hyper, step, [], [], tuple([] if n else None for n in need),
                                [], first=views.first)
                    call.params.append(views.param)
                    call.grads.append(gv)
                    call.indices.append(i)
                    for k, a in views.slots:
                        call.states[k].append(a)
                    stepped.append((p, views, step))
                i += 1
        if not stepped:
            return
        self._step_buckets(list(calls.values()), self.n_threads)
        for p, views, step in stepped:  # the step succeeded: commit
            if views.new:
                self.state[p].update(views.new)
                views.new, views.first = {}, False
            if views.step is not None:
                views.step[...] = step
        increment_version([p for p, _, _ in stepped])
        if len(self._views) > i:  # params left the groups: let their tensors go
            live = {id(p) for group in self.param_groups for p in group["params"]}
            self._views = {k: v for k, v in self._views.items() if k in live}

    def _views_of(self, p, i, need, group):
        """params[i]'s views, from the cache while they are still valid."""
        views = self._views.get(id(p))
        state = self.state.get(p, _NO_STATE)
        # Valid while the param and its state tensors are over the same memory
        # (share_memory_(), .data = ... move it; the views keep the old memory
        # alive, so an equal address is that memory), the param still
        # contiguous and of the same shape (.data = .t() keeps its address).
        if (views is not None and views.tensor is p and views.need == need and not views.new
                and p.data_ptr() == views.ptr and p.shape == views.shape and p.is_contiguous()):
            try:
                if tuple(map(_data_ptr, map(state.get, views.keys))) == views.ptrs:
                    return views
            except TypeError:  # a state entry deleted or not a tensor
                pass
        pv = _check_param(p, i)
        keys = [s for s, n in zip(self.KIND.slots, need) if n]
        if self.STEP_KEY:
            keys.append("step")
        tensors, arrays, new = [], {}, {}
        for key in keys:
            t = state.get(key)
            if t is None:
                t = new[key] = self._new_state(p, key, group)
            tensors.append(t)
            arrays[key] = _check_state(t, key, p, i)
        slots = tuple((k, arrays[s]) for k, (s, n) in enumerate(zip(self.KIND.slots, need)) if n)
        views = _Views(p, p.data_ptr(), p.shape, need, pv, arrays.get("step"), slots,
                       tuple(keys), tuple(tensors), tuple(map(_data_ptr, tensors)), new,
                       any(key != "step" for key in new))
        self._views[id(p)] = views
        return views

    def _new_state(self, p, key, group):
        if key == "step":
            return torch.tensor(0.0, dtype=_step_dtype())
        option = self.KIND.init.get(key)
        value = group[option] if option else 0.0
        return torch.full_like(p, value, memory_format=torch.contiguous_format)


_profiled_step = torch.optim.Optimizer.profile_hook_step(Optimizer._plain_step)


# ---- the optimizers -------------------------------------------------------------

class Adam(Optimizer):
    """``torch.optim.Adam``'s constructor, groups and state; the update is
    adamcore.Adam's (its docstring has the formulas), bitwise."""

    KIND = kinds.ADAM
    FIXED = {"eps_mode": "torch"}

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0,
                 amsgrad=False, *, foreach=None, maximize=False, capturable=False,
                 differentiable=False, fused=None, decoupled_weight_decay=False,
                 n_threads=None, impl="auto"):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, maximize=maximize, foreach=foreach,
                        capturable=capturable, differentiable=differentiable, fused=fused,
                        decoupled_weight_decay=decoupled_weight_decay)
        super().__init__(params, defaults, n_threads=n_threads, impl=impl)


class AdamW(Adam):
    """``torch.optim.AdamW``: Adam with decoupled weight decay (default 1e-2)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2,
                 amsgrad=False, *, maximize=False, foreach=None, capturable=False,
                 differentiable=False, fused=None, n_threads=None, impl="auto"):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach,
                         maximize=maximize, capturable=capturable,
                         differentiable=differentiable, fused=fused,
                         decoupled_weight_decay=True, n_threads=n_threads, impl=impl)


class SGD(Optimizer):
    """``torch.optim.SGD``; state ``momentum_buffer`` only when momentum is used
    (no ``step``, as torch). The update is adamcore.SGD's."""

    KIND = kinds.SGD
    STEP_KEY = False

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0,
                 nesterov=False, *, maximize=False, foreach=None, differentiable=False,
                 fused=None, n_threads=None, impl="auto"):
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening,
                        weight_decay=weight_decay, nesterov=nesterov, maximize=maximize,
                        foreach=foreach, differentiable=differentiable, fused=fused)
        super().__init__(params, defaults, n_threads=n_threads, impl=impl)


class RMSprop(Optimizer):
    """``torch.optim.RMSprop``; the update is adamcore.RMSprop's."""

    KIND = kinds.RMSPROP

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0,
                 centered=False, capturable=False, foreach=None, maximize=False,
                 differentiable=False, *, n_threads=None, impl="auto"):
        defaults = dict(lr=lr, momentum=momentum, alpha=alpha, eps=eps, centered=centered,
                        weight_decay=weight_decay, capturable=capturable, foreach=foreach,
                        maximize=maximize, differentiable=differentiable)
        super().__init__(params, defaults, n_threads=n_threads, impl=impl)


class Adagrad(Optimizer):
    """``torch.optim.Adagrad``; ``sum`` starts at ``initial_accumulator_value``
    when the param first steps (torch fills it at construction: same values).
    The update is adamcore.Adagrad's."""

    KIND = kinds.ADAGRAD

    def __init__(self, params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
                 eps=1e-10, foreach=None, *, maximize=False, differentiable=False, fused=None,
                 n_threads=None, impl="auto"):
        defaults = dict(lr=lr, lr_decay=lr_decay, eps=eps, weight_decay=weight_decay,
                        initial_accumulator_value=initial_accumulator_value, foreach=foreach,
                        maximize=maximize, differentiable=differentiable, fused=fused)
        super().__init__(params, defaults, n_threads=n_threads, impl=impl)


class AdaBelief(Optimizer):
    """AdaBelief (Zhuang et al., 2020) as adamcore.AdaBelief, with its options
    and state names (``exp_avg``, ``exp_avg_var``, ``max_exp_avg_var``, as the
    adabelief-pytorch package); torch has no AdaBelief of its own."""

    KIND = kinds.ADABELIEF

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-16, weight_decay=0.0, *,
                 amsgrad=False, decoupled_weight_decay=True, rectify=False, maximize=False,
                 n_threads=None, impl="auto"):
        defaults = dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                        amsgrad=amsgrad, decoupled_weight_decay=decoupled_weight_decay,
                        rectify=rectify, maximize=maximize)
        super().__init__(params, defaults, n_threads=n_threads, impl=impl)


#: adamcore kind name -> its torch.optim-style class; the tests are parametrised from it.
OPTIMIZERS = {cls.KIND.name: cls for cls in (Adam, SGD, RMSprop, Adagrad, AdaBelief)}
