#!/usr/bin/env bash
# cibuildwheel's before-all on macOS: a conda-forge environment at PREFIX
# holding libomp (llvm-openmp) and a clang that accepts -fopenmp, as
# scikit-learn's wheel builds do. Needs conda (or mamba) on PATH, as the
# CI's setup-miniforge step provides; Homebrew's libomp is not used, since it
# targets only the runner's own macOS version.
set -euo pipefail
PREFIX="${1:?usage: cibw_macos_openmp.sh PREFIX}"
CONDA="$(command -v mamba || command -v conda)" \
    || { echo "cibw_macos_openmp.sh needs conda or mamba on PATH" >&2; exit 1; }
"$CONDA" create --yes --prefix "$PREFIX" --channel conda-forge --override-channels \
    llvm-openmp clang
