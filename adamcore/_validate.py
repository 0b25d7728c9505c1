"""Argument checks: the one place where adamcore words its errors, and the
range rule of every hyperparameter.

The rules (``Real``, ``Flag``, ``Choice``) are data: the kinds' registry
(adamcore.kinds) names one per hyperparameter field, these functions check
and word them, and the compiled binding reads the same numbers for its fast
checks. When a fast check fails, the binding calls the functions here to
raise the error, so the C path and the NumPy reference refuse alike.

The checks of a whole step, made of these, are adamcore.plan's
(``check_buckets``).
"""

import math
import numbers

import numpy as np

from adamcore import qstate

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _real(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    try:
        return float(value)
    except OverflowError:
        return math.inf  # an int beyond double range: refused as not finite


# ---- range rules ------------------------------------------------------------

class Real:
    """A finite real in [lo, hi] (or [lo, hi) with ``hi_open``); ``message``
    words a refusal, with ``{value!r}`` and ``{name}`` filled in."""

    __slots__ = ("lo", "hi", "hi_open", "message")

    def __init__(self, lo, hi=math.inf, *, hi_open=False, message):
        self.lo, self.hi, self.hi_open, self.message = float(lo), float(hi), hi_open, message

    def ok(self, x):
        return math.isfinite(x) and self.lo <= x and (x < self.hi if self.hi_open else x <= self.hi)

    def check(self, name, value):
        if not self.ok(_real(name, value)):
            raise ValueError(self.message.format(value=value, name=name))

    def convert(self, value):
        return float(value)


class Flag:
    """A bool (NumPy's too). Strict, so every implementation reads it alike:
    an array's or an odd object's truth value would be taken only where used."""

    __slots__ = ()

    def check(self, name, value):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{name} must be a bool, got {type(value).__name__}")

    def convert(self, value):
        return bool(value)


class Choice:
    """One of ``values``; the kernel takes its index (csrc/adamcore.h's enum)."""

    __slots__ = ("values",)

    def __init__(self, *values):
        self.values = values

    def check(self, name, value):
        if not isinstance(value, str) or value not in self.values:
            wanted = " or ".join(repr(v) for v in self.values)
            raise ValueError(f"{name} must be {wanted}, got {value!r}")

    def convert(self, value):
        return self.values.index(value)


def _nonneg(what, name):
    return Real(0.0, message="Invalid " + what + ": {value!r} (" + name + " must be finite and >= 0)")


LR = _nonneg("learning rate", "lr")
EPS = _nonneg("epsilon value", "eps")
WEIGHT_DECAY = _nonneg("weight_decay value", "weight_decay")
MOMENTUM = _nonneg("momentum value", "momentum")
ALPHA = _nonneg("alpha value", "alpha")
LR_DECAY = _nonneg("lr_decay value", "lr_decay")
INITIAL_ACCUMULATOR = _nonneg("initial_accumulator_value value", "initial_accumulator_value")
DAMPENING = Real(-math.inf, message="Invalid dampening value: {value!r} (dampening must be finite)")
BETA1, BETA2 = (Real(0.0, 1.0, hi_open=True, message=f"Invalid beta parameter at index {i}: "
                     "{value!r} " f"(beta{i + 1} must be in [0, 1))") for i in (0, 1))
FLAG = Flag()
EPS_MODE = Choice("torch", "keras")


class Among:
    """One of ``values``, None included (an option outside the kernel's
    hyper: Adam's ``state_dtype``)."""

    __slots__ = ("values",)

    def __init__(self, *values):
        self.values = values

    def check(self, name, value):
        if not (value is None or isinstance(value, str)) or value not in self.values:
            wanted = ", ".join(repr(v) for v in self.values)
            raise ValueError(f"{name} must be one of {wanted}; got {value!r}")


class Seed:
    """An integer in [0, 2**64)."""

    __slots__ = ()

    def check(self, name, value):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(f"{name} must be an int, got {type(value).__name__}")
        if not 0 <= int(value) < 2 ** 64:
            raise ValueError(f"{name} must be in [0, 2**64), got {value!r}")


STATE_DTYPE = Among(None, "bfloat16", "int8")
SEED = Seed()


# ---- scalars of a call ------------------------------------------------------

def check_beta_pair(betas):
    """An optimizer's ``betas`` option: a tuple or list of two numbers."""
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")


def check_flag(name, value):
    FLAG.check(name, value)


def check_step(step):
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise TypeError(f"step must be an integer, got {type(step).__name__}")
    if not 1 <= step < 2 ** 63:
        raise ValueError(f"step must be in [1, 2**63) (the count after this update), got {step!r}")


def check_n_threads(n_threads):
    if n_threads is None:
        return
    if isinstance(n_threads, bool) or not isinstance(n_threads, numbers.Integral):
        raise TypeError(f"n_threads must be an integer or None, got {type(n_threads).__name__}")
    if n_threads == 0:
        raise ValueError("n_threads must be None, >= 1, or negative (-1: all CPUs), got 0")


def check_grad_scale(grad_scale):
    # NaN passes: clipping by a NaN norm makes every grad NaN, as in torch.
    # Infinity (or an int beyond double range) never comes from clipping.
    value = _real("grad_scale", grad_scale)
    if value < 0.0 or value == math.inf:
        raise ValueError(f"grad_scale must be finite and >= 0 (or NaN), got {grad_scale!r}")


# ---- hyperparameters and group options ---------------------------------------

def check_hyper(kind, hyper, names=None):
    """A kind's hyperparameters (its ``hyper_type``), each field by its rule;
    ``names`` maps a field to the name a message uses (a group's option)."""
    if not isinstance(hyper, kind.hyper_type):
        raise TypeError(f"hyper must be an adamcore.kinds.{kind.hyper_type.__name__}, "
                        f"got {type(hyper).__name__}")
    names = names or {}
    for field, rule in kind.fields.items():
        rule.check(names.get(field, field), getattr(hyper, field))
    if kind.check is not None:
        kind.check(hyper)


def check_group(kind, group):
    """A param group's options: every option a field of the kind's
    hyperparameters comes from, then the options outside them (Adagrad's
    initial_accumulator_value), named as the group names them. Returns
    the group's hyper."""
    if "betas" in group:
        check_beta_pair(group["betas"])
    hyper = kind.hyper_from(group)
    check_hyper(kind, hyper, kind.options)
    for option, rule in kind.extra.items():
        if option in group:  # absent where a caller has no such option (adamcore.torch)
            rule.check(option, group[option])
    return hyper


# ---- arrays -----------------------------------------------------------------

def label(name, index):
    return name if index is None else f"{name}s[{index}]"


def _span(a):
    start = a.__array_interface__["data"][0]
    return start, start + a.nbytes


def check_tensor(index, param, grad, state, fmt=None, scales=()):
    """Check one tensor's arrays against its param, ``state`` a list of (name,
    array) pairs stored in format ``fmt`` (adamcore.qstate; None: the
    param's dtype), ``scales`` int8 state's (name, absmax array) pairs;
    raise on the first problem."""
    fmt = fmt or qstate.NATIVE
    arrays = [("param", param), ("grad", grad)] + list(state)
    for name, a in arrays + list(scales):
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{label(name, index)} must be a numpy.ndarray, got {type(a).__name__}")
    p_name = label("param", index)
    if param.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{p_name} must have dtype float32 or float64, got {param.dtype}")
    for name, a in arrays[1:]:
        want = param.dtype if name == "grad" else qstate.storage_dtype(fmt, param.dtype)
        if a.dtype != want:
            raise TypeError(
                f"{label(name, index)} has dtype {a.dtype} but {p_name} has dtype {param.dtype}"
                if want == param.dtype else
                f"{label(name, index)} has dtype {a.dtype} but {p_name}'s "
                f"{fmt.name} state is {want}")
        if a.shape != param.shape:
            raise ValueError(
                f"{label(name, index)} has shape {a.shape} but {p_name} has shape {param.shape}"
            )
    for name, a in arrays:
        if name != "grad" and not a.flags.writeable:
            raise ValueError(f"{label(name, index)} is read-only; it is updated in place")
        if not a.flags.aligned:
            raise ValueError(f"{label(name, index)} is not aligned to its dtype ({a.dtype})")
    if not (param.flags.c_contiguous or param.flags.f_contiguous):
        raise ValueError(f"{p_name} must be C- or F-contiguous; it is updated in place, never copied")
    order = "C" if param.flags.c_contiguous else "F"
    for name, a in arrays[1:]:
        if not (a.flags.c_contiguous if order == "C" else a.flags.f_contiguous):
            raise ValueError(
                f"{label(name, index)} must be {order}-contiguous like {p_name} "
                "(same memory layout, so elements pair up)"
            )
    blocks = qstate.n_blocks(param.size)
    for name, a in scales:
        if a.dtype != np.float32 or a.shape != (blocks,):
            raise ValueError(f"{label(name, index)} must be a float32 array of shape ({blocks},), "
                             f"one absmax per block of {qstate.QBLOCK}; got {a.dtype} {a.shape}")
        if not (a.flags.writeable and a.flags.aligned and a.flags.c_contiguous):
            raise ValueError(f"{label(name, index)} must be writeable, aligned and contiguous")
    return [(label(name, index), a) for name, a in arrays + list(scales)]


def check_no_overlap(named_arrays):
    """Refuse any two arrays sharing a byte (param is grad, m overlaps v, ...)."""
    spans = sorted(
        (_span(a) + (name,) for name, a in named_arrays if a.nbytes > 0), key=lambda s: s[0]
    )
    for (_, end, name), (start, _, other) in zip(spans, spans[1:]):
        if start < end:
            raise ValueError(f"{other} overlaps {name} in memory; every buffer must be distinct")


def check_norm_arrays(grads, indices=None):
    """Gradients whose norm is taken: a list of contiguous float32/float64
    arrays, read in place (never copied); ``indices`` names them in messages."""
    if not isinstance(grads, (list, tuple)):
        raise TypeError(f"grads must be a list of arrays, got {type(grads).__name__}")
    for i, g in enumerate(grads):
        name = f"grads[{i if indices is None else indices[i]}]"
        if not isinstance(g, np.ndarray):
            raise TypeError(f"{name} must be a numpy.ndarray, got {type(g).__name__}")
        if g.dtype not in FLOAT_DTYPES:
            raise TypeError(f"{name} must have dtype float32 or float64, got {g.dtype}")
        if not (g.flags.c_contiguous or g.flags.f_contiguous):
            raise ValueError(f"{name} must be C- or F-contiguous")
        if not g.flags.aligned:
            raise ValueError(f"{name} is not aligned to its dtype ({g.dtype})")
