"""Minimize f(x) = x^3 - 2x^2 + 2 with adamcore.Adam (lr 0.1, 50 iterations).

f'(x) = 3x^2 - 4x is zero at x = 0 (a local maximum) and at x = 4/3 (the
local minimum, f = 22/27). f has no global minimum: it falls to -inf as
x -> -inf, so a start below 0 runs away.
"""

import numpy as np

import adamcore
from _common import parse_args, pyplot, save

LR, ITERATIONS = 0.1, 50
X_MIN = 4 / 3
STARTS = (0.0, 1e-6, 2.0)


def f(x):
    return x**3 - 2 * x**2 + 2


def grad_f(x):
    return 3 * x**2 - 4 * x


def minimize(x0, iterations):
    """The iterates x_1 .. x_iterations of Adam from x0."""
    x = np.array([x0])
    opt = adamcore.Adam([x], lr=LR)
    path = []
    for _ in range(iterations):
        opt.step(grad_f(x))
        path.append(x[0])
    return np.array(path)


def iterations_to_stay_within(path, tol):
    """The first iteration from which |x - 4/3| stays below tol to the end of path."""
    outside = np.flatnonzero(np.abs(path - X_MIN) >= tol)
    return outside[-1] + 2 if len(outside) else 1


def main():
    args = parse_args(__doc__)
    print(f"Adam, lr {LR}, {ITERATIONS} iterations; the local minimum is x = 4/3, "
          f"f(4/3) = {f(X_MIN):.6f}")
    print(f"{'start':>8} {'final x':>12} {'f(x)':>12} {'|x - 4/3|':>12}")
    paths = {x0: minimize(x0, ITERATIONS) for x0 in STARTS}
    for x0, path in paths.items():
        x = path[-1]
        # %g prints 0 only for an exact zero, so "stays at 0" is visible as such.
        print(f"{x0:>8g} {x:>12.6g} {f(x):>12.6g} {abs(x - X_MIN):>12.6g}")

    print("""
From x = 0 the gradient is exactly 0, so Adam's moments stay 0 and every update
is lr * 0 / (0 + eps) = 0: x stays at 0, a local maximum, forever.
From x = 1e-6 the gradient is -4e-6, yet the first step is almost the full lr:
Adam divides by the gradient's own scale (eps = 1e-8 barely matters here), so
only an exact zero gradient holds it. From x = 2 (and from 1e-6), 50 iterations
get near 4/3 but not settled: momentum carries x past the minimum and back.""")

    # Run on from x = 2 to see how long settling takes.
    long_path = minimize(2.0, 1000)
    for tol in (0.05, 0.01, 1e-3, 1e-6):
        print(f"from x = 2, |x - 4/3| < {tol:g} from iteration "
              f"{iterations_to_stay_within(long_path, tol)} on")

    plt = None if args.no_plot else pyplot()
    if plt is not None:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for x0, path in paths.items():
            ax.plot(np.arange(ITERATIONS + 1), np.r_[x0, path], marker=".", label=f"x0 = {x0:g}")
        ax.axhline(X_MIN, color="gray", ls="--", lw=1, label="x = 4/3")
        ax.set(xlabel="iteration", ylabel="x", title="Adam on x^3 - 2x^2 + 2, lr 0.1")
        ax.legend(loc="lower right", bbox_to_anchor=(1, 0.08))  # clear of all three paths
        fig.tight_layout()
        save(fig, "cubic.png")


if __name__ == "__main__":
    main()
