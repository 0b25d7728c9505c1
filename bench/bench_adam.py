"""pytest-benchmark suite: ``pytest bench`` (plain ``pytest`` runs tests/ only).

One float32/float64 Adam step per round, implementations of one (dtype, size)
side by side in a group; ``extra_info`` has the elements and GB/s (a step
reads p, g, m, v and writes p, m, v: 7 arrays).
"""

import numpy as np
import pytest

import adamcore
from adamcore import textbook

SIZES = [2 ** 10, 2 ** 16, 2 ** 20]
IMPLS = ["textbook", "numpy", "c"]


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("n", SIZES, ids=lambda n: f"n{n}")
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=lambda d: np.dtype(d).name)
def test_adam_step(benchmark, dtype, n, impl):
    rng = np.random.default_rng(0)
    p = rng.standard_normal(n).astype(dtype)
    g = rng.standard_normal(n).astype(dtype)
    benchmark.group = f"adam-{np.dtype(dtype).name}-n{n}"
    if impl == "textbook":
        m, v, t = np.zeros_like(p), np.zeros_like(p), [0]

        def step():
            t[0] += 1
            textbook.adam_step(p, g, m, v, t[0])
    else:
        opt = adamcore.Adam([p], impl=impl)
        opt.step([g])  # allocate state outside the timed region

        def step():
            opt.step([g])
    benchmark(step)
    bytes_moved = 7 * p.itemsize * n
    benchmark.extra_info.update(elements=n, gb_per_s=bytes_moved / benchmark.stats["median"] / 1e9)
