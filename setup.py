"""Build the one extension, adamcore._kernel: Cython binding + C kernel (csrc/).

- OpenMP: probed by compiling a tiny program; ADAMCORE_NO_OPENMP=1 opts out.
  Either way the build works (csrc/omp_compat.h), and build_info() says which.
- The extension is optional: where it cannot be compiled (no C compiler),
  the package still installs and runs on its NumPy fallback, with a warning.
  ADAMCORE_REQUIRE_KERNEL=1 makes a failed compile fail the build instead;
  the wheel builds set it (cibuildwheel, tools/check_wheel.sh), so no wheel
  ships without its kernel.
- Flags: -O3 -ffp-contract=off (no silent FMA: bitwise determinism)
  -fno-math-errno (lets sqrt vectorize). No -march=native: the kernel carries
  AVX2 and AVX-512 variants and picks one at run time.
"""

import os
import sys
import tempfile

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

UNIX_ARGS = ["-O3", "-ffp-contract=off", "-fno-math-errno"]
MSVC_ARGS = ["/O2", "/fp:precise"]


def openmp_flags(compiler):
    """(compile, link) flags for OpenMP, or None if opted out or unavailable."""
    if os.environ.get("ADAMCORE_NO_OPENMP", "0") not in ("", "0"):
        return None
    if compiler.compiler_type == "msvc":
        return ["/openmp"], []
    flags = (["-fopenmp"], ["-fopenmp"])
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "probe.c")
        with open(src, "w") as f:
            f.write("#include <omp.h>\nint main(void) { return omp_get_max_threads() < 1; }\n")
        try:
            objs = compiler.compile([src], output_dir=tmp, extra_postargs=flags[0])
            compiler.link_executable(objs, "probe", output_dir=tmp, extra_postargs=flags[1])
        except Exception:  # any compile or link failure means "no OpenMP here"
            print("adamcore: OpenMP not found; building single-threaded", file=sys.stderr)
            return None
    return flags


class BuildExt(build_ext):
    def build_extensions(self):
        args = MSVC_ARGS if self.compiler.compiler_type == "msvc" else UNIX_ARGS
        omp = openmp_flags(self.compiler)
        required = os.environ.get("ADAMCORE_REQUIRE_KERNEL", "0") == "1"
        compile_args = args + (omp[0] if omp else [])
        for ext in self.extensions:
            ext.optional = not required  # set here: cythonize() does not carry it over
            ext.extra_compile_args = compile_args
            ext.extra_link_args = omp[1] if omp else []
            ext.define_macros.append(("ADAMCORE_COMPILE_ARGS", '"%s"' % " ".join(compile_args)))
        super().build_extensions()


extension = Extension(
    "adamcore._kernel",
    sources=["adamcore/_kernel.pyx", "csrc/adam_step.c", "csrc/adam_simd.c", "csrc/stream_probe.c",
             "csrc/grad_norm.c", "csrc/parallel.c", "csrc/family_step.c",
             "csrc/family_simd.c", "csrc/rows.c", "csrc/rank_sum.c", "csrc/lowp_step.c",
             "csrc/lowp_simd.c", "csrc/qmaps.c"],
    include_dirs=["csrc", numpy.get_include()],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
)

setup(
    ext_modules=cythonize([extension], compiler_directives={"language_level": 3}),
    cmdclass={"build_ext": BuildExt},
)
