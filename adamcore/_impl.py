"""Choose the implementation: the compiled kernel or the NumPy reference.

``impl="auto"`` means ``ADAMCORE_IMPL`` from the environment (read once, at
import: a lookup in os.environ costs more than a small step) if set, else the
C kernel when the extension imports, else NumPy with one warning. An explicit
``impl="c"`` or ``impl="numpy"`` always wins over the environment.
"""

import os
import warnings

try:
    from adamcore import _kernel
except ImportError as exc:  # no compiled extension: NumPy fallback
    _kernel = None
    _KERNEL_ERROR = exc
else:
    _KERNEL_ERROR = None

from adamcore import reference

SIMD_LEVELS = ("baseline", "avx2", "avx512")
_simd_env = os.environ.get("ADAMCORE_SIMD")
if _simd_env and _simd_env not in SIMD_LEVELS:
    warnings.warn(f"adamcore: ignoring ADAMCORE_SIMD={_simd_env!r}; expected one of {SIMD_LEVELS}",
                  RuntimeWarning, stacklevel=2)

IMPLS = ("auto", "c", "numpy")
ENV_IMPL = os.environ.get("ADAMCORE_IMPL", "auto") or "auto"
_warned = False


def kernel():
    """The compiled module, or None."""
    return _kernel


def resolve(impl):
    """Turn ``impl`` into "c" or "numpy", or raise a clear error."""
    global _warned
    if impl not in IMPLS:
        raise ValueError(f"impl must be one of {IMPLS}, got {impl!r}")
    if impl == "auto":
        impl = ENV_IMPL
        if impl not in IMPLS:
            raise ValueError(f"ADAMCORE_IMPL must be one of {IMPLS}, got {impl!r}")
    if impl == "auto":
        if _kernel is not None:
            return "c"
        if not _warned:
            _warned = True
            warnings.warn(
                f"adamcore: compiled kernel unavailable ({_KERNEL_ERROR}); "
                "using the NumPy fallback, which is slower",
                RuntimeWarning,
                stacklevel=3,
            )
        return "numpy"
    if impl == "c" and _kernel is None:
        raise ImportError(
            f"impl='c' needs the compiled extension adamcore._kernel, which failed to "
            f"import: {_KERNEL_ERROR}. Reinstall with a C compiler, or use impl='numpy'."
        )
    return impl


def adam_stepper(impl):
    """The function running Adam buckets (see adamcore._validate) with
    ``impl`` ("c" or "numpy"): ``f(buckets, n_threads, scratch)`` for both,
    ``scratch`` being the NumPy path's reusable buffers (ignored by C)."""
    return _kernel.adam_step_buckets if impl == "c" else reference.adam_step_buckets


def adam_planned_stepper():
    """The C extension's Adam fast path (adamcore._base.Optimizer._planned_stepper)."""
    return _kernel.adam_planned_step


def family_stepper(impl):
    """``adam_stepper`` for the optimizer family's buckets."""
    return _kernel.family_step_buckets if impl == "c" else reference.family_step_buckets
