"""Gradient descent, momentum and Adam in the valley f(x, y) = x^2 + 10 y^2.

From (1.5, 1.5), 100 iterations each (all adamcore optimizers):
- gradient descent (SGD, lr 0.09): the steep y direction caps the step at
  2 / 20 = 0.1, so near that cap it zig-zags across the valley;
- momentum (SGD, lr 0.01, momentum 0.9): builds up speed, overshoots, spirals in;
- Adam (lr 0.1): divides each coordinate's step by that coordinate's gradient
  scale, so the 10x steeper y no longer matters and it heads straight down the
  diagonal; with a constant lr it then keeps swinging through the minimum
  along that diagonal.
"""

import numpy as np

import adamcore
from _common import parse_args, pyplot, save

START, ITERATIONS = (1.5, 1.5), 100
OPTIMIZERS = {
    "gradient descent, lr 0.09": lambda p: adamcore.SGD([p], lr=0.09),
    "momentum 0.9, lr 0.01": lambda p: adamcore.SGD([p], lr=0.01, momentum=0.9),
    "Adam, lr 0.1": lambda p: adamcore.Adam([p], lr=0.1),
}


def f(p):
    return p[..., 0] ** 2 + 10 * p[..., 1] ** 2


def descend(make_optimizer):
    """The points visited, start included, as an (ITERATIONS + 1, 2) array."""
    p = np.array(START)
    opt = make_optimizer(p)
    path = [p.copy()]
    for _ in range(ITERATIONS):
        opt.step(np.array([2 * p[0], 20 * p[1]]))
        path.append(p.copy())
    return np.array(path)


def main():
    args = parse_args(__doc__)
    paths = {name: descend(make) for name, make in OPTIMIZERS.items()}
    print(f"f(x, y) = x^2 + 10 y^2 from {START}, {ITERATIONS} iterations")
    print(f"{'optimizer':<28} {'final x':>11} {'final y':>11} {'final f':>11}")
    for name, path in paths.items():
        x, y = path[-1]
        print(f"{name:<28} {x:>11.3e} {y:>11.3e} {f(path[-1]):>11.3e}")
    print("""
The ranking is the valley's, not a general one: this valley is only 10x steeper
across than along, and lr 0.09 is close to gradient descent's best step
(2 / (2 + 20) = 0.091), where it shrinks the distance by about 0.82 per step.
Momentum 0.9 oscillates and shrinks it by about sqrt(0.9) = 0.95 per step;
Adam's constant lr never lets it converge geometrically.""")

    plt = None if args.no_plot else pyplot()
    if plt is not None:
        fig, (ax_path, ax_loss) = plt.subplots(1, 2, figsize=(11, 4.2))
        xs, ys = np.meshgrid(np.linspace(-2, 2, 200), np.linspace(-1.7, 1.7, 200))
        ax_path.contour(xs, ys, xs**2 + 10 * ys**2, levels=np.geomspace(0.05, 40, 12),
                        colors="lightgray", linewidths=0.8)
        for name, path in paths.items():
            ax_path.plot(path[:, 0], path[:, 1], marker=".", ms=3, lw=1, label=name)
            ax_loss.semilogy(f(path), label=name)
        ax_path.plot(*START, "ko")
        ax_path.set(xlabel="x", ylabel="y", title="paths on x^2 + 10 y^2", aspect="equal")
        ax_path.legend(loc="lower left", fontsize=8)
        ax_loss.set(xlabel="iteration", ylabel="f(x, y)", title="loss")
        ax_loss.legend(fontsize=8)
        fig.tight_layout()
        save(fig, "valley.png")


if __name__ == "__main__":
    main()
