"""Builds other than the default: without OpenMP (ADAMCORE_NO_OPENMP=1) and
with no working C compiler (CC=false). Each compiles a copy of the sources in
a temporary folder and runs the result in a fresh interpreter, so the checkout
and the installed package stay as they are. Skipped where the sources or the
build tools are missing (an installed wheel)."""

import json
import os
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

import adamcore

ROOT = pathlib.Path(__file__).resolve().parent.parent
SOURCES = ["setup.py", "pyproject.toml", "README.md", "adamcore", "csrc"]

def _has(module):
    import importlib.util
    return importlib.util.find_spec(module) is not None


pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not (ROOT / "setup.py").exists() or not shutil.which("cc")
    or not (_has("Cython") and _has("setuptools")),
    reason="needs the source tree, Cython, setuptools and a C compiler")]

# Steps a param above the parallel threshold with 2 threads, saves it, and
# prints build_info and the warnings seen.
SCRIPT = """
import json, sys, warnings
# An editable install's finder would hand out its own adamcore._kernel for
# any adamcore; this run must see only the build on PYTHONPATH.
sys.meta_path[:] = [f for f in sys.meta_path if "editable" not in repr(f).lower()]
import numpy as np
with warnings.catch_warnings(record=True) as seen:
    warnings.simplefilter("always")
    import adamcore
    rng = np.random.default_rng(0)
    p = rng.standard_normal(70000).astype(np.float32)
    opt = adamcore.Adam([p], lr=1e-2, amsgrad=True, n_threads=2)
    for _ in range(3):
        opt.step([rng.standard_normal(70000).astype(np.float32)])
np.save(sys.argv[1], p)
kernel = sys.modules.get("adamcore._kernel")
print(json.dumps({"info": adamcore.build_info(), "file": adamcore.__file__,
                  "kernel": getattr(kernel, "__file__", None),
                  "warnings": [str(w.message) for w in seen]}))
"""


def build(tmp_path, **env):
    """setup.py build of a copy of the sources, with os.environ updated by env."""
    src = tmp_path / "src"
    src.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name,
                            ignore=shutil.ignore_patterns("*.so", "*.o", "__pycache__", "_kernel.c"))
        else:
            shutil.copy(ROOT / name, src / name)
    # Only env may require the kernel (the no-compiler build must not).
    env = {**{k: v for k, v in os.environ.items() if k != "ADAMCORE_REQUIRE_KERNEL"}, **env}
    return subprocess.run([sys.executable, "setup.py", "-q", "build", "--build-base",
                           str(tmp_path / "build")], cwd=src, env=env, capture_output=True,
                          text=True, timeout=600)


def build_and_run(tmp_path, **env):
    built = build(tmp_path, **env)
    assert built.returncode == 0, built.stderr[-3000:]
    lib = next((tmp_path / "build").glob("lib*"))
    run_env = {**os.environ, "PYTHONPATH": str(lib)}
    run_env.pop("ADAMCORE_IMPL", None)
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path / "p.npy")], cwd=tmp_path,
                         env=run_env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    for path in (result["file"], result["kernel"] or str(lib)):  # this build, not the installed one
        assert path.startswith(str(lib)), path
    return result, np.load(tmp_path / "p.npy")


def expected(impl):
    rng = np.random.default_rng(0)
    p = rng.standard_normal(70000).astype(np.float32)
    opt = adamcore.Adam([p], lr=1e-2, amsgrad=True, n_threads=2, impl=impl)
    for _ in range(3):
        opt.step([rng.standard_normal(70000).astype(np.float32)])
    return p


def test_build_without_openmp_runs_single_threaded_with_the_same_bits(tmp_path):
    result, p = build_and_run(tmp_path, ADAMCORE_NO_OPENMP="1")
    info = result["info"]
    assert info["extension"] and not info["openmp"] and info["max_threads"] == 1
    assert "-fopenmp" not in info["compile_args"]
    assert np.array_equal(p.view(np.uint32), expected("numpy").view(np.uint32))


def test_no_compiler_still_installs_and_falls_back_to_numpy(tmp_path):
    result, p = build_and_run(tmp_path, CC="false", LDSHARED="false")
    info = result["info"]
    assert not info["extension"] and info["simd_in_use"] is None
    fallback = [w for w in result["warnings"] if "NumPy fallback" in w]
    assert len(fallback) == 1, result["warnings"]
    assert np.array_equal(p.view(np.uint32), expected("numpy").view(np.uint32))


def test_no_compiler_fails_the_build_when_the_kernel_is_required(tmp_path):
    """ADAMCORE_REQUIRE_KERNEL=1, as the wheel builds set it: no wheel without its kernel."""
    built = build(tmp_path, CC="false", LDSHARED="false", ADAMCORE_REQUIRE_KERNEL="1")
    assert built.returncode != 0
    assert not [p for p in (tmp_path / "build").glob("lib*/adamcore/_kernel*")
                if p.suffix in (".so", ".pyd")], "a kernel was built"
