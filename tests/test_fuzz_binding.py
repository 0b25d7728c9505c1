"""Bounded runs of the binding's fuzz target (tests/fuzz_binding.py): C and
the NumPy reference agree on every random call, refusals are TypeError or
ValueError with nothing written. Each run is a separate process, so a crash
fails the test instead of ending the suite. ADAMCORE_FUZZ_SECONDS sets the
time per run (default 10); longer runs: see the target's docstring."""

import importlib.util
import os
import pathlib
import subprocess
import sys

import pytest

from helpers import requires_kernel

TARGET = pathlib.Path(__file__).resolve().parent / "fuzz_binding.py"
SECONDS = os.environ.get("ADAMCORE_FUZZ_SECONDS", "10")

pytestmark = [pytest.mark.slow, requires_kernel]


def run_target(*args):
    run = subprocess.run([sys.executable, str(TARGET), *args], capture_output=True, text=True,
                         timeout=600 + 2 * float(SECONDS))
    assert run.returncode == 0, (run.stdout + run.stderr)[-6000:]
    return run.stdout + run.stderr


def test_fuzz_binding_seeded_random():
    out = run_target("--plain", "--seconds", SECONDS, "--seed", "0")
    assert "fuzz_binding: " in out, out


@pytest.mark.skipif(importlib.util.find_spec("atheris") is None, reason="atheris is not installed")
def test_fuzz_binding_atheris(tmp_path):
    # a crash or OOM reproducer goes to the test's folder, not the working directory
    out = run_target(f"-max_total_time={SECONDS}", "-seed=1", f"-artifact_prefix={tmp_path}/")
    assert "Done " in out, out[-3000:]
