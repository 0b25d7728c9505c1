"""threadpoolctl sees adamcore's OpenMP pool and limits it."""

import numpy as np
import pytest

import adamcore
from helpers import KERNEL, requires_kernel

threadpoolctl = pytest.importorskip("threadpoolctl")
pytestmark = requires_kernel


@pytest.mark.skipif(KERNEL is not None and not KERNEL.openmp_enabled(),
                    reason="built without OpenMP")
def test_threadpool_limits_makes_steps_single_threaded():
    assert any(i["internal_api"] == "openmp" for i in threadpoolctl.threadpool_info())
    before = adamcore.build_info()["max_threads"]
    rng = np.random.default_rng(0)
    n = 4 * KERNEL.PARALLEL_MIN
    p1, p2 = (rng.standard_normal(n).astype(np.float32) for _ in range(2))
    p2[...] = p1
    g = rng.standard_normal(n).astype(np.float32)
    free = adamcore.Adam([p1])
    with threadpoolctl.threadpool_limits(1):
        assert adamcore.build_info()["max_threads"] == 1
        limited = adamcore.Adam([p2])
        for _ in range(3):
            limited.step([g])
    for _ in range(3):
        free.step([g])
    assert adamcore.build_info()["max_threads"] == before
    assert np.array_equal(p1.view(np.uint32), p2.view(np.uint32))
