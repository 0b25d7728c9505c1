"""Argument checks: the one place where adamcore words its errors.

The NumPy reference runs these checks before touching anything. The compiled
binding runs its own fast C-level checks and, when one fails, calls
``check_buckets`` here to raise the same error, so both implementations refuse
the same inputs with the same messages.

A step is a list of *buckets*, each a tuple::

    (params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, indices, hyper)

params ... exp_avg_sqs are equal-length lists of arrays of one dtype;
max_exp_avg_sqs is such a list (AMSGrad) or None; indices names the tensors in
messages (``grads[3]``), or None for a single unnamed tensor; hyper is
``(lr, beta1, beta2, eps, weight_decay, step, decoupled, maximize, eps_mode,
grad_scale)``.

The optimizer family (SGD, RMSprop, Adagrad, AdaBelief) steps *family
buckets*::

    (params, grads, states, indices, hyper)

where hyper is a dict of every key of ``FAMILY_HYPER`` (``family_hyper``
fills the ones an optimizer does not use) and states is a 3-tuple: the lists
of state arrays of the kind's slots (``FAMILY_SLOTS``), None for a slot the
hyperparameters do not use (``required_slots``).
"""

import math
import numbers

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
EPS_MODES = ("torch", "keras")


def _real(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    try:
        return float(value)
    except OverflowError:
        return math.inf  # an int beyond double range: refused as not finite


def check_lr(lr):
    value = _real("lr", lr)
    if not (value >= 0.0 and math.isfinite(value)):
        raise ValueError(f"Invalid learning rate: {lr!r} (lr must be finite and >= 0)")


def check_beta_pair(betas):
    """An optimizer's ``betas`` option: a tuple or list of two numbers."""
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")


def check_betas(beta1, beta2):
    for i, beta in enumerate((beta1, beta2)):
        if not 0.0 <= _real(f"beta{i + 1}", beta) < 1.0:
            raise ValueError(
                f"Invalid beta parameter at index {i}: {beta!r} (beta{i + 1} must be in [0, 1))"
            )


def check_eps(eps):
    value = _real("eps", eps)
    if not (value >= 0.0 and math.isfinite(value)):
        raise ValueError(f"Invalid epsilon value: {eps!r} (eps must be finite and >= 0)")


def check_weight_decay(weight_decay):
    value = _real("weight_decay", weight_decay)
    if not (value >= 0.0 and math.isfinite(value)):
        raise ValueError(
            f"Invalid weight_decay value: {weight_decay!r} (weight_decay must be finite and >= 0)"
        )


def check_eps_mode(eps_mode):
    if eps_mode not in EPS_MODES:
        raise ValueError(f"eps_mode must be 'torch' or 'keras', got {eps_mode!r}")


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


def check_flag(name, value):
    # Strict, so every implementation reads the flag the same way: an array's
    # or an odd object's truth value would be taken only where it is used.
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")


def check_grad_scale(grad_scale):
    # NaN passes: clipping by a NaN norm makes every grad NaN, as in torch.
    # Infinity (or an int beyond double range) never comes from clipping.
    value = _real("grad_scale", grad_scale)
    if value < 0.0 or value == math.inf:
        raise ValueError(f"grad_scale must be finite and >= 0 (or NaN), got {grad_scale!r}")


def check_hyper(hyper):
    if type(hyper) is not tuple or len(hyper) != 10:
        raise TypeError("hyper must be a tuple of 10 items (see adamcore._validate)")
    (lr, beta1, beta2, eps, weight_decay, step, decoupled, maximize, eps_mode,
     grad_scale) = hyper
    check_lr(lr)
    check_betas(beta1, beta2)
    check_eps(eps)
    check_weight_decay(weight_decay)
    check_step(step)
    check_flag("decoupled", decoupled)
    check_flag("maximize", maximize)
    check_eps_mode(eps_mode)
    check_grad_scale(grad_scale)


def _label(name, index):
    return name if index is None else f"{name}s[{index}]"


def _span(a):
    start = a.__array_interface__["data"][0]
    return start, start + a.nbytes


def check_tensor(index, param, grad, state):
    """Check one tensor's arrays against its param, ``state`` a list of (name,
    array) pairs; raise on the first problem."""
    arrays = [("param", param), ("grad", grad)] + list(state)
    for name, a in arrays:
        if not isinstance(a, np.ndarray):
            raise TypeError(f"{_label(name, index)} must be a numpy.ndarray, got {type(a).__name__}")
    p_name = _label("param", index)
    if param.dtype not in FLOAT_DTYPES:
        raise TypeError(f"{p_name} must have dtype float32 or float64, got {param.dtype}")
    for name, a in arrays[1:]:
        if a.dtype != param.dtype:
            raise TypeError(
                f"{_label(name, index)} has dtype {a.dtype} but {p_name} has dtype {param.dtype}"
            )
        if a.shape != param.shape:
            raise ValueError(
                f"{_label(name, index)} has shape {a.shape} but {p_name} has shape {param.shape}"
            )
    for name, a in arrays:
        if name != "grad" and not a.flags.writeable:
            raise ValueError(f"{_label(name, index)} is read-only; it is updated in place")
        if not a.flags.aligned:
            raise ValueError(f"{_label(name, index)} is not aligned to its dtype ({a.dtype})")
    if not (param.flags.c_contiguous or param.flags.f_contiguous):
        raise ValueError(f"{p_name} must be C- or F-contiguous; it is updated in place, never copied")
    order = "C" if param.flags.c_contiguous else "F"
    for name, a in arrays[1:]:
        if not (a.flags.c_contiguous if order == "C" else a.flags.f_contiguous):
            raise ValueError(
                f"{_label(name, index)} must be {order}-contiguous like {p_name} "
                "(same memory layout, so elements pair up)"
            )
    return [(_label(name, index), a) for name, a in arrays]


def check_no_overlap(named_arrays):
    """Refuse any two arrays sharing a byte (param is grad, m overlaps v, ...)."""
    spans = sorted(
        (_span(a) + (name,) for name, a in named_arrays if a.nbytes > 0), key=lambda s: s[0]
    )
    for (_, end, name), (start, _, other) in zip(spans, spans[1:]):
        if start < end:
            raise ValueError(f"{other} overlaps {name} in memory; every buffer must be distinct")


def _check_lists(bucket, names):
    """A bucket's array lists: one entry per param; ``names`` are the names of
    bucket[0], bucket[1], ... in order (None: not a list), those ending in '?'
    may be None."""
    n = len(bucket[0]) if type(bucket[0]) is list else 0
    for name, items in zip(names, bucket):
        if name is None:  # not a list of arrays
            continue
        if name.endswith("?"):
            if items is None:
                continue
            name = name[:-1]
        if type(items) is not list:
            raise TypeError(f"{name} must be a list, got {type(items).__name__}")
        if len(items) != n:
            raise ValueError(f"expected {n} {name} (one per param), got {len(items)}")


def check_buckets(buckets, n_threads):
    """Validate a whole step (see the module docstring) before anything runs."""
    check_n_threads(n_threads)
    if not isinstance(buckets, list):
        raise TypeError(f"buckets must be a list, got {type(buckets).__name__}")
    named = []
    for bucket in buckets:
        # The order the binding checks in: layout, hyper, lists, tensors.
        if type(bucket) is not tuple or len(bucket) != 7:
            raise TypeError("each bucket must be a tuple of 7 items (see adamcore._validate)")
        params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, indices, hyper = bucket
        check_hyper(hyper)
        _check_lists(bucket, ("params", "grads", "exp_avgs", "exp_avg_sqs", "max_exp_avg_sqs?",
                              "indices?"))
        states = (("exp_avg", exp_avgs), ("exp_avg_sq", exp_avg_sqs),
                  ("max_exp_avg_sq", max_exp_avg_sqs))
        named += _check_bucket_tensors(params, grads, states, indices)
    check_no_overlap(named)


def _check_bucket_tensors(params, grads, states, indices):
    """Check every tensor of one bucket (``states``: (name, list or None)
    pairs) and that they share one dtype; the named arrays, for the overlap
    check."""
    named, dtype = [], None
    for k, param in enumerate(params):
        index = None if indices is None else indices[k]
        state = [(name, arrays[k]) for name, arrays in states if arrays is not None]
        named += check_tensor(index, param, grads[k], state)
        if dtype is None:
            dtype = param.dtype
        elif param.dtype != dtype:
            raise TypeError(
                f"{_label('param', index)} has dtype {param.dtype} but the other params "
                f"of this call have {dtype}; one call steps one dtype"
            )
    return named


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


# ---- the optimizer family -------------------------------------------------

FAMILY_SLOTS = {
    "sgd": ("momentum_buffer",),
    "rmsprop": ("square_avg", "momentum_buffer", "grad_avg"),
    "adagrad": ("sum",),
    "adabelief": ("exp_avg", "exp_avg_var", "max_exp_avg_var"),
}
FAMILY_HYPER = ("kind", "lr", "weight_decay", "grad_scale", "eps", "momentum", "dampening",
                "alpha", "lr_decay", "beta1", "beta2", "step", "maximize", "nesterov", "first",
                "centered", "decoupled", "amsgrad", "rectify")
_FAMILY_DEFAULTS = dict(weight_decay=0.0, grad_scale=1.0, eps=0.0, momentum=0.0,
                        dampening=0.0, alpha=0.0, lr_decay=0.0, beta1=0.0, beta2=0.0, step=1,
                        maximize=False, nesterov=False, first=False, centered=False,
                        decoupled=False, amsgrad=False, rectify=False)


def family_hyper(kind, lr, **options):
    """A family bucket's hyper dict: ``options`` over neutral values for the
    keys ``kind`` does not use."""
    return {"kind": kind, "lr": lr, **_FAMILY_DEFAULTS, **options}


def required_slots(hyper):
    """Which of the kind's 3 state slots the hyperparameters use (csrc/adamcore.h)."""
    kind = hyper["kind"]
    if kind == "sgd":  # momentum as a double, as the kernel reads it
        return (float(hyper["momentum"]) != 0, False, False)
    if kind == "rmsprop":
        return (True, float(hyper["momentum"]) != 0, bool(hyper["centered"]))
    if kind == "adagrad":
        return (True, False, False)
    return (True, True, bool(hyper["amsgrad"]))


def _check_nonneg(name, value, what):
    x = _real(name, value)
    if not (x >= 0.0 and math.isfinite(x)):
        raise ValueError(f"Invalid {what}: {value!r} ({name} must be finite and >= 0)")


def check_momentum(momentum):
    _check_nonneg("momentum", momentum, "momentum value")


def check_sgd_options(momentum, dampening, nesterov):
    check_momentum(momentum)
    if not math.isfinite(_real("dampening", dampening)):
        raise ValueError(f"Invalid dampening value: {dampening!r} (dampening must be finite)")
    if nesterov and (float(momentum) <= 0 or float(dampening) != 0):
        raise ValueError("Nesterov momentum requires a momentum and zero dampening")


def check_alpha(alpha):
    _check_nonneg("alpha", alpha, "alpha value")


def check_lr_decay(lr_decay):
    _check_nonneg("lr_decay", lr_decay, "lr_decay value")


def check_initial_accumulator_value(value):
    _check_nonneg("initial_accumulator_value", value, "initial_accumulator_value value")


def check_family_hyper(hyper):
    if not isinstance(hyper, dict) or set(hyper) != set(FAMILY_HYPER):
        raise TypeError(f"a family bucket's hyper must be a dict with keys {FAMILY_HYPER}")
    kind = hyper["kind"]
    if not isinstance(kind, str) or kind not in FAMILY_SLOTS:
        raise ValueError(f"kind must be one of {tuple(FAMILY_SLOTS)}, got {kind!r}")
    for flag in ("maximize", "nesterov", "first", "centered", "decoupled", "amsgrad", "rectify"):
        check_flag(flag, hyper[flag])
    check_lr(hyper["lr"])
    check_weight_decay(hyper["weight_decay"])
    check_grad_scale(hyper["grad_scale"])
    check_eps(hyper["eps"])
    if kind == "sgd":
        check_sgd_options(hyper["momentum"], hyper["dampening"], hyper["nesterov"])
    elif kind == "rmsprop":
        check_alpha(hyper["alpha"])
        check_momentum(hyper["momentum"])
    elif kind == "adagrad":
        check_lr_decay(hyper["lr_decay"])
    else:
        check_betas(hyper["beta1"], hyper["beta2"])
    check_step(hyper["step"])
    # Every real, used by this kind or not (those it uses are checked above),
    # is read by the binding: all finite.
    for key in ("weight_decay", "eps", "momentum", "dampening", "alpha", "lr_decay", "beta1",
                "beta2"):
        if not math.isfinite(_real(key, hyper[key])):
            raise ValueError(f"{key} must be finite, got {hyper[key]!r}")


def check_family_buckets(buckets, n_threads):
    """Validate a whole family step (see the module docstring) before anything runs."""
    check_n_threads(n_threads)
    if not isinstance(buckets, list):
        raise TypeError(f"buckets must be a list, got {type(buckets).__name__}")
    named = []
    for bucket in buckets:
        # The order the binding checks in: layout, hyper, lists, states, tensors.
        if type(bucket) is not tuple or len(bucket) != 5:
            raise TypeError("each bucket must be a tuple of 5 items (see adamcore._validate)")
        params, grads, states, indices, hyper = bucket
        check_family_hyper(hyper)
        _check_lists(bucket, ("params", "grads", None, "indices?"))
        slots = FAMILY_SLOTS[hyper["kind"]]
        if (not isinstance(states, tuple) or len(states) != 3
                or any(x is not None and type(x) is not list for x in states)):
            raise TypeError("a family bucket's states must be a 3-tuple of lists or None")
        for k, need in enumerate(required_slots(hyper)):
            given = states[k] is not None
            if given != need:
                name = repr(slots[k]) if k < len(slots) else f"slot {k}"
                raise ValueError(f"state {name} is {'missing' if need else 'not used'} "
                                 f"with these hyperparameters")
            if given and len(states[k]) != len(params):
                raise ValueError(f"expected {len(params)} {slots[k]} arrays, got "
                                 f"{len(states[k])}")
        named += _check_bucket_tensors(params, grads, list(zip(slots, states)), indices)
    check_no_overlap(named)
