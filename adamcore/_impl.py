"""Choose the implementation: the compiled kernel or the NumPy reference.

``impl="auto"`` means ``ADAMCORE_IMPL`` from the environment (read once, at
import: a lookup in os.environ costs more than a small step) if set, else the
C kernel when the extension imports, else NumPy with one warning. An explicit
``impl="c"`` or ``impl="numpy"`` always wins over the environment.
"""

import os
import warnings

from adamcore import reference

try:
    from adamcore import _kernel
except ImportError as exc:  # no compiled extension: NumPy fallback
    _kernel = None
    # ImportError's own words would say "cannot import name '_kernel' ...
    # (most likely due to a circular import)": the module is missing.
    _KERNEL_ERROR = ImportError(
        "the compiled extension adamcore._kernel is not built or does not load "
        f"({exc}); install from the source tree with a C compiler "
        "(python -m pip install -e .) to build it")
else:
    _KERNEL_ERROR = None

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
                f"adamcore: {_KERNEL_ERROR}; using the NumPy fallback, which is slower",
                RuntimeWarning,
                stacklevel=3,
            )
        return "numpy"
    if impl == "c" and _kernel is None:
        raise ImportError(
            f"impl='c' needs the compiled extension adamcore._kernel: {_KERNEL_ERROR}; "
            "or use impl='numpy'."
        )
    return impl


def runner(impl):
    """The function that runs a plan (adamcore.plan) with ``impl`` ("c" or
    "numpy"): ``run(plan, grads, scale, n_threads)``, the same for both."""
    return _kernel.run if impl == "c" else reference.run


def bucket_stepper(impl):
    """The function that steps buckets (adamcore.plan.Bucket) with ``impl``:
    ``step_buckets(buckets, n_threads)``, the same for both."""
    return _kernel.step_buckets if impl == "c" else reference.step_buckets
