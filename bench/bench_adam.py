"""pytest-benchmark suite: ``pytest bench`` (plain ``pytest`` runs tests/ only).

dtype x size x implementation x threads, one step per round, on the cases of
adamcore.bench.cases (the same ones ``python -m adamcore.bench`` times).
Implementations of one (dtype, size, threads) share a group, so they sit side
by side; ``extra_info`` records threads, elements and GB/s.
"""

import os

import numpy as np
import pytest

from adamcore.bench.cases import (IMPLS, MANY_TENSORS_ONLY, SINGLE_THREADED, Case, available,
                                  bytes_per_element)

SIZES = [2 ** k for k in (4, 10, 12, 14, 16, 18, 20, 22, 24)]
THREADS = sorted({1, os.cpu_count() or 1})


def run(benchmark, case, group):
    case.enter()
    benchmark.group = group
    benchmark(case.step)
    benchmark.extra_info.update(
        threads=case.threads, elements=case.n,
        gb_per_s=bytes_per_element(case.dtype) * case.n / benchmark.stats["median"] / 1e9)


@pytest.mark.parametrize("impl", [i for i in IMPLS if i not in MANY_TENSORS_ONLY])
@pytest.mark.parametrize("threads", THREADS, ids=lambda t: f"t{t}")
@pytest.mark.parametrize("n", SIZES, ids=lambda n: f"n{n}")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_step(benchmark, dtype, n, threads, impl):
    if not available(impl):
        pytest.skip(f"{impl} needs torch (pip install torch==2.13.0)")
    if impl in SINGLE_THREADED and threads > 1:
        pytest.skip(f"{impl} is single-threaded")
    run(benchmark, Case(impl, dtype, n, threads), f"{dtype}-n{n}-t{threads}")


@pytest.mark.parametrize("impl", ["c-adam", "c-flat", "torch-fused", "torch-foreach"])
@pytest.mark.parametrize("threads", THREADS, ids=lambda t: f"t{t}")
@pytest.mark.parametrize("n_tensors", [1, 1000], ids=lambda k: f"x{k}")
def test_many_small_tensors(benchmark, n_tensors, threads, impl):
    """1000 float32 tensors of 1024 elements against the same elements as one."""
    if not available(impl):
        pytest.skip(f"{impl} needs torch (pip install torch==2.13.0)")
    run(benchmark, Case(impl, "float32", 1000 * 1024, threads, n_tensors),
        f"many-tensors-t{threads}")


@pytest.mark.parametrize("impl", ["c-functional", "c-adam"])
def test_per_call_16_elements(benchmark, impl):
    run(benchmark, Case(impl, np.float32, 16, 1), "per-call-16")
