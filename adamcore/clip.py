"""Gradient clipping over NumPy arrays, as ``torch.nn.utils`` does it.

The 2-norm is one pass of the C kernel (csrc/grad_norm.c) over all the grads,
bitwise the same for any thread count and SIMD level, and equal to
``adamcore.reference.grad_sumsq`` (the NumPy fallback) bit for bit. Other
norms are computed with NumPy. Grads of both float dtypes may be mixed: each
dtype is summed in one call, float32 first, then float64.
"""

import math
import numbers

import numpy as np

from adamcore import _impl, _validate, reference


def _as_list(grads):
    """A single array or an iterable of arrays, as a list (torch takes both)."""
    if isinstance(grads, np.ndarray):
        return [grads]
    try:
        return list(grads)
    except TypeError:
        raise TypeError("grads must be an array or a list of arrays, got "
                        f"{type(grads).__name__}") from None


def grad_sumsq(grads, *, n_threads=None, impl="auto", indices=None):
    """(sum of squares of every element, any element NaN or inf), one pass.
    ``indices`` names the grads in error messages (default: their positions)."""
    impl = _impl.resolve(impl)
    _validate.check_n_threads(n_threads)
    grads = _as_list(grads)
    by_dtype = {d: [] for d in _validate.FLOAT_DTYPES}
    for g in grads:
        group = by_dtype.get(getattr(g, "dtype", None))
        if group is None:  # not a float32/float64 array: the checks word it
            _validate.check_norm_arrays(grads, indices)
        group.append(g)
    if impl == "numpy":
        _validate.check_norm_arrays(grads, indices)
    total, nonfinite = 0.0, False
    for group in by_dtype.values():
        if not group:
            continue
        if impl == "c":
            try:  # the kernel checks at C speed; only a refusal pays for Python's checks
                s, bad = _impl.kernel().grad_sumsq(group, n_threads)
            except (TypeError, ValueError):
                _validate.check_norm_arrays(grads, indices)  # names the grad by its index
                raise
        else:
            s, bad = reference.grad_sumsq(group)
        total += s
        nonfinite = nonfinite or bad
    return total, nonfinite


def _norm_type(norm_type):
    p = _validate._real("norm_type", norm_type)
    if not p > 0:
        raise ValueError(f"norm_type must be > 0 or inf, got {norm_type!r}")
    return p


def grad_norm(grads, norm_type=2.0, *, n_threads=None, impl="auto"):
    """The norm of all ``grads`` taken together as one vector (a float)."""
    p = _norm_type(norm_type)
    grads = _as_list(grads)
    if p == 2.0:
        return math.sqrt(grad_sumsq(grads, n_threads=n_threads, impl=impl)[0])
    _validate.check_norm_arrays(grads)
    if p == math.inf:
        return max((float(np.max(np.abs(g))) for g in grads if g.size), default=0.0)
    with np.errstate(over="ignore"):
        total = sum(float(np.sum(np.abs(g, dtype=np.float64) ** p)) for g in grads)
    return total ** (1.0 / p)


def clip_coefficient(total_norm, max_norm):
    """torch's factor: max_norm / (total_norm + 1e-6), at most 1 (NaN if the
    norm is NaN). Grads are scaled by it unless it is >= 1."""
    return min(max_norm / (total_norm + 1e-6), 1.0) if total_norm == total_norm else math.nan


def step_scale(opt, sumsq, nonfinite):
    """A step's grad scale from its grads' sum of squares: 1 without
    ``opt.max_grad_norm``, else torch's clip coefficient (``opt.last_grad_norm``
    records the norm); or None when ``opt.skip_nonfinite`` skips the step
    (counted in ``opt.skipped_steps``). Shared by the optimizers and
    adamcore.distributed, which takes the sum across processes."""
    scale = 1.0
    if opt.max_grad_norm is not None:
        opt.last_grad_norm = math.sqrt(sumsq)
        scale = clip_coefficient(opt.last_grad_norm, opt.max_grad_norm)
    if opt.skip_nonfinite and nonfinite:
        opt.skipped_steps += 1
        return None
    return scale


def clip_grad_norm(grads, max_norm, norm_type=2.0, error_if_nonfinite=False, *,
                   n_threads=None, impl="auto"):
    r"""Scale ``grads`` in place so that their global norm is at most ``max_norm``.

    With ``total = ||concat(grads)||_p``, every grad is multiplied by
    ``min(max_norm / (total + 1e-6), 1)`` (``torch.nn.utils.clip_grad_norm_``;
    a NaN norm makes every grad NaN there and here). Returns ``total``, the
    norm before clipping. ``error_if_nonfinite=True`` raises RuntimeError,
    with nothing changed, when the norm is NaN or infinite.
    """
    max_norm = _validate._real("max_norm", max_norm)
    if not max_norm >= 0:
        raise ValueError(f"max_norm must be >= 0, got {max_norm!r}")
    grads = _as_list(grads)
    for i, g in enumerate(grads):
        if isinstance(g, np.ndarray) and not g.flags.writeable:
            raise ValueError(f"grads[{i}] is read-only; clipping scales it in place")
    total = grad_norm(grads, norm_type, n_threads=n_threads, impl=impl)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"The total norm of order {float(norm_type)} for gradients is "
                           "non-finite, so it cannot be clipped. To scale the gradients by the "
                           "non-finite norm anyway, set error_if_nonfinite=False")
    coef = clip_coefficient(total, max_norm)
    if not coef >= 1.0:
        for g in grads:
            np.multiply(g, g.dtype.type(coef), out=g)
    return total


def clip_grad_value(grads, clip_value):
    """Clamp every element of ``grads`` to [-clip_value, clip_value], in place
    (``torch.nn.utils.clip_grad_value_``; NaN stays NaN)."""
    if isinstance(clip_value, bool) or not isinstance(clip_value, numbers.Real):
        raise TypeError(f"clip_value must be a real number, got {type(clip_value).__name__}")
    if not clip_value >= 0:
        raise ValueError(f"clip_value must be >= 0, got {clip_value!r}")
    grads = _as_list(grads)
    _validate.check_norm_arrays(grads)
    for i, g in enumerate(grads):
        if not g.flags.writeable:
            raise ValueError(f"grads[{i}] is read-only; clipping clamps it in place")
    for g in grads:
        np.clip(g, -clip_value, clip_value, out=g)
