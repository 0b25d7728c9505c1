"""Fixtures for the adamcore tests; the plain helpers and constants are in
helpers.py (``from helpers import ...``).
"""

import numpy as np
import pytest

from helpers import KERNEL


@pytest.fixture
def rng(request):
    """A generator seeded from the test id, so every test sees its own fixed data."""
    seed = np.frombuffer(request.node.nodeid.encode(), np.uint8).astype(np.uint64).sum()
    return np.random.default_rng(int(seed))


@pytest.fixture
def set_simd():
    """``set_simd(name)`` switches the kernel's SIMD level for this test only."""
    if KERNEL is None:
        pytest.skip("the compiled extension adamcore._kernel is not built")
    original = KERNEL.simd_level()
    yield KERNEL.set_simd_level
    KERNEL.set_simd_level(original)


@pytest.fixture(autouse=True)
def _simd_level_unchanged():
    """No test may leak a SIMD level change into the next one."""
    before = KERNEL.simd_level() if KERNEL is not None else None
    yield
    after = KERNEL.simd_level() if KERNEL is not None else None
    assert after == before, f"a test left the SIMD level at {after!r} (was {before!r})"


@pytest.fixture(autouse=True)
def _no_impl_env(monkeypatch):
    """Tests choose the implementation explicitly; a stray ADAMCORE_IMPL must not."""
    monkeypatch.delenv("ADAMCORE_IMPL", raising=False)
