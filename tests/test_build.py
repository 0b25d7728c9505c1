"""The package under test has its compiled kernel: without it every C test
would skip and a broken build would pass unseen."""

import os

import pytest

from adamcore import _impl


@pytest.mark.skipif(os.environ.get("ADAMCORE_EXPECT_NO_EXTENSION") == "1",
                    reason="testing an install without the compiled extension on purpose")
def test_extension_is_built():
    assert _impl.kernel() is not None, (
        f"adamcore._kernel failed to import ({_impl._KERNEL_ERROR}); the C tests would all skip. "
        "Set ADAMCORE_EXPECT_NO_EXTENSION=1 to test the NumPy fallback alone."
    )
