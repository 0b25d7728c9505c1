"""This machine's memory bound for an Adam step, measured in the same run.

csrc/stream_probe.c streams Adam's pattern (4 float32 arrays read, 3 written
back in place, one add each) over arrays 16x the 32 MiB last-level cache
here; its bytes per second at 1 and N threads bound every large Adam step.
"""

import numpy as np

from adamcore import _impl
from adamcore.bench.timing import median_ns

PROBE_ELEMENTS = 2 ** 25  # 4 arrays x 128 MiB


def measure(threads, elements=PROBE_ELEMENTS, repeats=7):
    """GB/s of the probe at each thread count in ``threads`` ({} without the
    extension)."""
    kernel = _impl.kernel()
    if kernel is None:
        return {}
    # Same offset mod 64 for all four, as adamcore allocates a param's state.
    arrays = [np.full(elements, 0.5, np.float32) for _ in range(4)]
    result = {}
    for t in threads:
        ns = median_ns(lambda: kernel.stream_probe(*arrays, t), repeats=repeats,
                       sample_s=0.0, warmup_s=0.3)
        result[t] = 28 * elements / ns
    return result
