# Build and run-time configuration: OpenMP, SIMD levels, thread counts.

PARALLEL_MIN = ADAMCORE_PARALLEL_MIN
COMPILE_ARGS = ADAMCORE_COMPILE_ARGS.decode()


def openmp_enabled():
    return bool(adamcore_openmp_enabled())


def max_threads():
    """OpenMP's current thread limit (1 without OpenMP)."""
    return adamcore_max_threads()


def simd_levels():
    """Names of the SIMD levels this build and CPU run, lowest first."""
    return [adamcore_simd_name(i).decode() for i in range(adamcore_simd_supported() + 1)]


def simd_level():
    """Name of the SIMD level in use."""
    return adamcore_simd_name(adamcore_simd_get()).decode()


def set_simd_level(name):
    """Use SIMD level ``name`` from now on; returns the previous level's name.

    Every level gives the same bits; this exists to test and measure that.
    """
    names = [adamcore_simd_name(i).decode() for i in range(ADAMCORE_SIMD_COUNT)]
    if name not in names:
        raise ValueError(f"SIMD level must be one of {names}, got {name!r}")
    previous = simd_level()
    if adamcore_simd_set(names.index(name)) != ADAMCORE_OK:
        raise ValueError(f"SIMD level {name!r} is not supported here; available: {simd_levels()}")
    return previous


cpdef int resolve_n_threads(object n_threads) except -1:
    """None: OpenMP's limit; n >= 1: n; n < 0: limit + 1 + n, at least 1."""
    cdef long n
    cdef int overflow = 0
    if n_threads is None:
        return adamcore_max_threads()
    if type(n_threads) is not int:
        _validate.check_n_threads(n_threads)  # raises, or accepts an integer type
    n = PyLong_AsLongAndOverflow(n_threads, &overflow)
    if n == 0 and not overflow:
        _validate.check_n_threads(n_threads)
    n = (1 << 20) * overflow if overflow else max(min(n, 1 << 20), -(1 << 20))
    if n < 0:
        n = adamcore_max_threads() + 1 + n
        return n if n > 1 else 1
    return n
