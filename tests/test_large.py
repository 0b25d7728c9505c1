"""Arrays past 2**31 elements: every index is 64-bit.

- The thread split (adamcore_run_bounds in csrc/adam_internal.h) for totals
  past 2**31 and 2**32, compiled into a tiny C program: cheap, always run
  where there are sources and a compiler.
- A real step of 2**31 + 17 float32 elements through the C kernel, opt-in
  (ADAMCORE_TEST_LARGE=1) and only with the memory for it (four 8 GiB arrays),
  checked near the start, around 2**31 and at the end against the NumPy
  reference on copies of those slices (the update is elementwise, so that is
  exact). The same check runs at 2**20 + 17 elements everywhere.
"""

import os
import pathlib
import shutil
import subprocess

import numpy as np
import pytest

from adamcore import functional
from helpers import assert_bitwise_equal, ref_adam_step, requires_kernel

CSRC = pathlib.Path(__file__).resolve().parent.parent / "csrc"
N = 2 ** 31 + 17
NEEDED_BYTES = 4 * N * 4 + 2 * 2 ** 30  # four float32 arrays, and room for the rest
HYPER = dict(lr=1e-2, beta1=0.9, beta2=0.999, eps=1e-8, weight_decay=0.01, decoupled=True)

BOUNDS_PROGRAM = r"""
#include <stdio.h>
#include "adam_internal.h"
int main(void) {
    const int64_t totals[] = {(1LL << 31) - 1, (1LL << 31) + 17, (1LL << 32) + 5, 3LL << 40};
    const int64_t runs[] = {1, 2, 3, 7, 64, 1000};
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 6; b++) {
            int64_t next = 0, lo, hi;
            for (int64_t r = 0; r < runs[b]; r++) {
                adamcore_run_bounds(r, runs[b], totals[a], 16, &lo, &hi);
                if (lo != next || hi < lo || (hi != totals[a] && hi % 16)) {
                    printf("total %lld runs %lld: run %lld is [%lld, %lld)\n", (long long)totals[a],
                           (long long)runs[b], (long long)r, (long long)lo, (long long)hi);
                    return 1;
                }
                next = hi;
            }
            if (next != totals[a]) { printf("total %lld: covered %lld\n",
                                            (long long)totals[a], (long long)next); return 1; }
        }
    puts("ok");
    return 0;
}
"""


@pytest.mark.skipif(not (CSRC / "adam_internal.h").exists() or not shutil.which("cc"),
                    reason="needs the source tree's csrc/ and a C compiler")
def test_thread_split_covers_totals_past_2_to_31(tmp_path):
    src = tmp_path / "bounds.c"
    src.write_text(BOUNDS_PROGRAM)
    exe = tmp_path / "bounds"
    build = subprocess.run(["cc", "-O2", "-Wall", "-I", str(CSRC), str(src), "-o", str(exe)],
                           capture_output=True, text=True, timeout=600)
    assert build.returncode == 0, build.stderr[-3000:]
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=600)
    assert run.returncode == 0 and run.stdout.strip() == "ok", run.stdout


def physical_memory():
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not reported on this platform
        return 0


def fill(a, scale):
    """a[i] = scale * ((i mod 1021) - 510), in chunks: a different value at
    every index near any power of two, so an index that wrapped would show."""
    chunk = 2 ** 26
    for lo in range(0, a.size, chunk):
        i = np.arange(lo, min(lo + chunk, a.size), dtype=np.int64)
        a[lo:lo + i.size] = scale * ((i % 1021) - 510)


def check_step(n, boundary):
    """Step n float32 elements through the C kernel with all threads; compare
    slices at the start, around ``boundary`` and at the end with the reference."""
    p = np.empty(n, np.float32)
    g = np.empty(n, np.float32)
    fill(p, 1e-2)
    fill(g, 1e-3)
    m = np.full(n, 1e-3, np.float32)
    v = np.full(n, 1e-4, np.float32)
    slices = [slice(0, 64), slice(boundary - 64, boundary + 17), slice(n - 64, n)]
    expected = []
    for s in slices:
        ps, gs, ms, vs = (a[s].copy() for a in (p, g, m, v))
        ref_adam_step(ps, gs, ms, vs, step=3, **HYPER)
        expected.append((ps, ms, vs))
    functional.adam_step(p, g, m, v, step=3, impl="c", n_threads=-1, **HYPER)
    for s, (ps, ms, vs) in zip(slices, expected):
        where = f"[{s.start}:{s.stop}]"
        assert_bitwise_equal(p[s], ps, "param" + where)
        assert_bitwise_equal(m[s], ms, "exp_avg" + where)
        assert_bitwise_equal(v[s], vs, "exp_avg_sq" + where)


@requires_kernel
def test_step_check_at_2_to_20():
    """check_step itself, at a size every machine has."""
    check_step(2 ** 20 + 17, 2 ** 20)


@requires_kernel
@pytest.mark.skipif(os.environ.get("ADAMCORE_TEST_LARGE") != "1",
                    reason="opt-in: set ADAMCORE_TEST_LARGE=1 (needs ~34 GiB of memory)")
@pytest.mark.skipif(physical_memory() < NEEDED_BYTES,
                    reason=f"needs {NEEDED_BYTES / 2 ** 30:.0f} GiB of memory, "
                           f"this machine has {physical_memory() / 2 ** 30:.0f} GiB")
def test_step_past_2_to_31_elements():
    check_step(N, 2 ** 31)
