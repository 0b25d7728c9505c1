"""The row step's kernel alone (adamcore._kernel.rows_step), for A/B runs of
two builds side by side, as tools/ab_per_call.py does for dense steps.

    PYTHONPATH=/path/to/old/tree python tools/ab_rows.py
    PYTHONPATH=/path/to/new/tree python tools/ab_rows.py

Out of cache: a 1,000,000 x 64 float32 table, 4096 fresh uniform lookups per
step (coalesced outside the timing), lazy Adam and SparseAdam in turn, 40
steps each on 1 thread; median microseconds per step. In cache: 1024 rows of
64 (all rows of a 1024-row table, in L2), and the dense step of the same
65,536 contiguous elements for reference.
"""

import time

import numpy as np

from adamcore import _kernel, functional, kinds
from adamcore import rows as R

LAZY, SPARSE_ADAM = R.LAZY.code, R.SPARSE_ADAM.code
HYPER = kinds.AdamHyper(1e-3, 0.9, 0.999, 1e-8, 0.0, "keras", False, False, False)


def tables(rng, n_rows, width):
    w = rng.standard_normal((n_rows, width), np.float32)
    m, v = np.zeros_like(w), np.zeros_like(w)
    m.fill(0.0)  # every page touched, as after a long run
    v.fill(0.0)
    return w, m, v


def step(mode, t, rows, c):
    w, m, v = t
    _kernel.rows_step(mode, w, m, v, None, rows, c, HYPER, 1, 1.0, 1)


def out_of_cache(rng, n_rows=1_000_000, width=64, k=4096, steps=40):
    tabs = {mode: tables(rng, n_rows, width) for mode in (LAZY, SPARSE_ADAM)}
    rows = rng.standard_normal((k, width)).astype(np.float32)
    times = {mode: [] for mode in tabs}
    for _ in range(steps):
        for mode, t in tabs.items():  # in turn: a slow spell hits both
            c = _kernel.rows_coalesce(rng.integers(0, n_rows, k), n_rows)
            start = time.perf_counter()
            step(mode, t, rows, c)
            times[mode].append(time.perf_counter() - start)
    return {mode: np.median(ts[5:]) * 1e6 for mode, ts in times.items()}


def in_cache(rng, n_rows=1024, width=64, repeats=300):
    t = tables(rng, n_rows, width)
    rows = rng.standard_normal((n_rows, width)).astype(np.float32)
    c = _kernel.rows_coalesce(rng.permutation(n_rows), n_rows)
    w, m, v = t

    def median_us(fn):
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - start)
        return np.median(samples) * 1e6

    return {"lazy": median_us(lambda: step(LAZY, t, rows, c)),
            "sparse_adam": median_us(lambda: step(SPARSE_ADAM, t, rows, c)),
            "dense step": median_us(lambda: functional.adam_step(
                w, rows, m, v, step=1, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                n_threads=1))}


if __name__ == "__main__":
    rng = np.random.default_rng(0)
    cold = out_of_cache(rng)
    hot = in_cache(rng)
    print(f"1M x 64, 4096 rows: lazy {cold[LAZY]:.0f} us, sparse_adam {cold[SPARSE_ADAM]:.0f} us;  "
          + "1024 x 64 in L2: " + ", ".join(f"{k} {v:.1f} us" for k, v in hot.items()))
