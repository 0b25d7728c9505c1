"""The C core on its own: csrc/test_kernel.c built and run with the Makefile,
plainly and under AddressSanitizer + UndefinedBehaviorSanitizer. Built in a
copy of csrc/, so the checkout stays clean; skipped where there is no csrc/
(an installed wheel) or no make and C compiler."""

import pathlib
import shutil
import subprocess

import pytest

CSRC = pathlib.Path(__file__).resolve().parent.parent / "csrc"

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not (CSRC / "Makefile").exists() or not shutil.which("make") or not shutil.which("cc"),
    reason="needs the source tree's csrc/, make and a C compiler")]


@pytest.mark.parametrize("target", ["test", "asan"])
def test_c_kernel_suite(target, tmp_path):
    work = tmp_path / "csrc"
    shutil.copytree(CSRC, work)
    run = subprocess.run(["make", "-s", "-C", str(work), target], capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert " 0 failures" in run.stdout, run.stdout[-3000:]
