"""Fit y = 2x + 1 to 100 noisy points with adamcore.Adam (lr 0.1, 100 iterations).

The noise is Gaussian with standard deviation 0.1, so the best possible mean
squared error is about 0.01, and least squares on these 100 points recovers w
and b to about 0.02 (w's standard error is 0.1 / sqrt(100 * var(x)) ~ 0.017).
"""

import numpy as np

import adamcore
from _common import parse_args, pyplot, save

LR, ITERATIONS, NOISE = 0.1, 100, 0.1


def main():
    args = parse_args(__doc__)
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, 100)
    y = 2 * x + 1 + NOISE * rng.standard_normal(100)

    w, b = np.zeros(1), np.zeros(1)
    opt = adamcore.Adam([w, b], lr=LR)
    losses = []
    for _ in range(ITERATIONS):
        err = w * x + b - y
        losses.append(np.mean(err**2))
        opt.step([2 * np.mean(err * x, keepdims=True), 2 * np.mean(err, keepdims=True)])
    loss = np.mean((w * x + b - y) ** 2)

    # The exact minimizer of the same loss: what Adam is converging to.
    w_ls, b_ls = np.polyfit(x, y, 1)
    loss_ls = np.mean((w_ls * x + b_ls - y) ** 2)
    print(f"Adam, lr {LR}, {ITERATIONS} iterations: w = {w[0]:.4f}, b = {b[0]:.4f}, "
          f"final loss = {loss:.6f}")
    print(f"least squares:                w = {w_ls:.4f}, b = {b_ls:.4f}, "
          f"loss = {loss_ls:.6f}")
    print(f"truth: w = 2, b = 1; noise variance = {NOISE**2:g}")

    plt = None if args.no_plot else pyplot()
    if plt is not None:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.semilogy(np.arange(ITERATIONS), losses, label="Adam, lr 0.1")
        ax.axhline(loss_ls, color="gray", ls="--", lw=1, label="least squares")
        ax.set(xlabel="iteration", ylabel="mean squared error", title="y = 2x + 1 + noise")
        ax.legend()
        fig.tight_layout()
        save(fig, "linear_regression.png")


if __name__ == "__main__":
    main()
