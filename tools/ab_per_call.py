"""Per-call costs of a step, for A/B runs of two builds side by side.

    PYTHONPATH=/path/to/old/tree python tools/ab_per_call.py
    PYTHONPATH=/path/to/new/tree python tools/ab_per_call.py

Run the two alternately, several times, on a quiet machine, and compare
medians: 16-element Adam.step and functional.adam_step; 1000 x 1024 params
(1 and 2 threads); 1000 x 16 params with every grad, with one param frozen,
and after one step that skipped a param. Prints microseconds per step.
"""

import time

import numpy as np

import adamcore
from adamcore import functional
from adamcore.__main__ import median_ns


def median_us(step, repeats=31):
    """Median of ``repeats`` samples of ~20 ms each (adamcore.__main__.median_ns)."""
    step()
    start, calls = time.perf_counter(), 0
    while time.perf_counter() - start < 0.02:
        step()
        calls += 1
    return median_ns(step, repeats, calls) / 1e3


def arrays(rng, count, size):
    return [rng.standard_normal(size).astype(np.float32) for _ in range(count)]


def main():
    rng = np.random.default_rng(0)
    out = {}
    p, g, m, v = arrays(rng, 4, 16)
    opt = adamcore.Adam([p], n_threads=1)
    out["Adam.step 16"] = median_us(lambda: opt.step([g]))
    out["functional 16"] = median_us(lambda: functional.adam_step(
        p, g, m, v, step=1, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, n_threads=1))
    for threads in (1, 2):
        ps, gs = arrays(rng, 1000, 1024), arrays(rng, 1000, 1024)
        opt = adamcore.Adam(ps, n_threads=threads)
        out[f"1000x1024 t{threads}"] = median_us(lambda: opt.step(gs), repeats=15)
    gs = arrays(rng, 1000, 16)
    skipped = list(gs)
    skipped[500] = None
    opt = adamcore.Adam(arrays(rng, 1000, 16), n_threads=1)
    out["1000x16 every grad"] = median_us(lambda: opt.step(gs), repeats=15)
    opt = adamcore.Adam(arrays(rng, 1000, 16), n_threads=1)
    out["1000x16 one frozen"] = median_us(lambda: opt.step(skipped), repeats=15)
    opt = adamcore.Adam(arrays(rng, 1000, 16), n_threads=1)
    opt.step(gs)
    opt.step(skipped)
    out["1000x16 skipped once"] = median_us(lambda: opt.step(gs), repeats=15)
    print("  ".join(f"{k}: {v:.2f}" for k, v in out.items()))


if __name__ == "__main__":
    main()
