"""``python -m adamcore``: build info, the seed example, and a timing.

1. What was built and what is in use (``adamcore.build_info()``).
2. Linear regression y = 2x + 1 (100 noisy points) trained with adamcore.Adam.
3. Median time per step of adamcore.Adam vs textbook NumPy Adam, side by side
   in one run, float32, at several sizes; and the per-call cost of a 16-element
   step. ``--sizes 10 16 20`` picks the log2 sizes, ``--repeats`` the samples.
"""

import argparse
import time

import numpy as np

import adamcore
from adamcore import functional, textbook


def train_linear_regression(steps=100, lr=0.1, seed=0):
    """Fit y = 2x + 1 with Adam; returns (w, b, final mean squared error)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, 100)
    y = 2 * x + 1 + 0.1 * rng.standard_normal(100)
    w, b = np.zeros(1), np.zeros(1)
    opt = adamcore.Adam([w, b], lr=lr)
    for _ in range(steps):
        err = w[0] * x + b[0] - y
        opt.step([np.array([2 * np.mean(err * x)]), np.array([2 * np.mean(err)])])
    return w[0], b[0], float(np.mean((w[0] * x + b[0] - y) ** 2))


def median_ns(fn, repeats, inner, warmup_s=0.3):
    """Median ns per call over ``repeats`` samples of ``inner`` calls, after
    ``warmup_s`` seconds of calls: from idle, this machine runs small steps
    ~1.8x slower for the first tens of milliseconds."""
    end = time.perf_counter() + warmup_s
    while time.perf_counter() < end:
        fn()
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter_ns() - t0) / inner)
    return float(np.median(samples))


def time_sizes(log2_sizes, repeats):
    """Rows (n, textbook ns, adamcore ns) for float32 steps of 2**k elements."""
    rng = np.random.default_rng(0)
    rows = []
    for k in log2_sizes:
        n = 2 ** k
        g = rng.standard_normal(n).astype(np.float32)
        p1, m1, v1 = np.zeros(n, np.float32), np.zeros(n, np.float32), np.zeros(n, np.float32)
        p2 = np.zeros(n, np.float32)
        opt = adamcore.Adam([p2], lr=1e-3)
        t = [0]

        def textbook_step():
            t[0] += 1
            textbook.adam_step(p1, g, m1, v1, t[0])

        def adamcore_step():
            opt.step([g])

        inner = max(1, 2 ** 22 // n)
        textbook_step(), adamcore_step()  # first touch and state allocation
        tb = median_ns(textbook_step, repeats, inner)
        ac = median_ns(adamcore_step, repeats, inner)
        rows.append((n, tb, ac))
    return rows


def time_small_call(repeats):
    """ns per 16-element float32 step through the functional API and Adam.step."""
    p, g, m, v = (np.zeros(16, np.float32) for _ in range(4))
    g += 0.5
    state = {"t": 0}

    def functional_step():
        state["t"] += 1
        functional.adam_step(p, g, m, v, step=state["t"], lr=1e-3, beta1=0.9, beta2=0.999,
                             eps=1e-8)

    q = np.zeros(16, np.float32)
    opt = adamcore.Adam([q], lr=1e-3)
    grads = [g]
    return (median_ns(functional_step, repeats, 2000),
            median_ns(lambda: opt.step(grads), repeats, 2000))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m adamcore", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10, 16, 20, 24],
                        help="log2 of the element counts to time (default: 10 16 20 24)")
    parser.add_argument("--repeats", type=int, default=7, help="timing samples per size")
    args = parser.parse_args(argv)

    print(f"adamcore {adamcore.__version__}")
    for key, value in adamcore.build_info().items():
        print(f"  {key}: {value}")

    w, b, mse = train_linear_regression()
    print("\nLinear regression y = 2x + 1 (100 noisy points, Adam lr=0.1, 100 steps):")
    print(f"  w = {w:.4f}, b = {b:.4f}, mse = {mse:.5f}")

    print(f"\nfloat32 step, median of {args.repeats} samples, adamcore.Adam vs textbook NumPy Adam:")
    print(f"  {'elements':>10} {'textbook':>12} {'adamcore':>12} {'speedup':>8} {'adamcore GB/s':>14}")
    for n, tb, ac in time_sizes(args.sizes, args.repeats):
        print(f"  {n:>10} {tb / 1e3:>10.1f}us {ac / 1e3:>10.1f}us {tb / ac:>7.1f}x "
              f"{28 * n / ac:>14.1f}")
    f_ns, o_ns = time_small_call(args.repeats)
    print(f"\n16-element step: {f_ns / 1e3:.2f} us through functional.adam_step, "
          f"{o_ns / 1e3:.2f} us through Adam.step")


if __name__ == "__main__":
    main()
