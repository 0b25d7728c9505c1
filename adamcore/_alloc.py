"""State allocation: zeros at the same address mod 64 as the param.

NumPy aligns large arrays to 16 bytes only. Placing exp_avg, exp_avg_sq and
max_exp_avg_sq at the param's offset within a 64-byte line lets the kernel's
one peel loop align every stream it writes.
"""

import numpy as np

LINE = 64


def empty_like_aligned(param):
    """An uninitialised array with param's shape, dtype and memory layout,
    starting at param's address mod 64."""
    offset = param.__array_interface__["data"][0] % LINE
    raw = np.empty(param.nbytes + LINE - 1, np.uint8)
    start = (offset - raw.__array_interface__["data"][0]) % LINE
    flat = raw[start:start + param.nbytes].view(param.dtype)
    order = "F" if param.flags.f_contiguous and not param.flags.c_contiguous else "C"
    return flat.reshape(param.shape, order=order)


def zeros_like_aligned(param):
    out = empty_like_aligned(param)
    out.fill(0)
    return out


def copy_like_aligned(param, value):
    """A copy of ``value`` (same shape as param) laid out like param."""
    out = empty_like_aligned(param)
    np.copyto(out, value)
    return out
