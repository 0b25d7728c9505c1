"""What was built and what is in use: ``adamcore.build_info()``."""

from adamcore import _impl


def build_info():
    """A dict describing the build: extension loaded, OpenMP, SIMD, flags."""
    k = _impl.kernel()
    if k is None:
        return {
            "extension": False,
            "extension_error": str(_impl._KERNEL_ERROR),
            "openmp": False,
            "max_threads": 1,
            "simd_in_use": None,
            "simd_available": [],
            "compile_args": None,
            "parallel_min_elements": None,
        }
    return {
        "extension": True,
        "extension_error": None,
        "openmp": k.openmp_enabled(),
        "max_threads": k.max_threads(),
        "simd_in_use": k.simd_level(),
        "simd_available": k.simd_levels(),
        "compile_args": k.COMPILE_ARGS,
        "parallel_min_elements": k.PARALLEL_MIN,
    }


def set_simd_level(name):
    """Use SIMD level ``name`` ("baseline", "avx2", "avx512") from now on and
    return the previous one. The environment variable ADAMCORE_SIMD caps the
    level at import. Results are identical at every level."""
    _impl.resolve("c")  # ImportError with the reason if the extension is missing
    return _impl.kernel().set_simd_level(name)
