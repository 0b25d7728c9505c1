"""Softmax regression on scikit-learn's 8x8 digits: adamcore.Adam vs adamcore.SGD.

A linear model (64 pixels -> 10 logits, float32) trained on minibatches of 64
with the cross-entropy loss; 1347 training and 450 test images (a stratified
split with a fixed seed). The learning rates come from a coarse sweep (1e-3 to
1 in steps of about 3x): each is at or near its optimizer's best test accuracy
after 10 and after 100 epochs. (A real study would pick them on a validation
split, not on the test set.)
"""

import numpy as np

import adamcore
from _common import digits, parse_args, pyplot, save, softmax_cross_entropy

BATCH = 64
OPTIMIZERS = {
    "Adam, lr 0.01": lambda params: adamcore.Adam(params, lr=0.01),
    "SGD, lr 0.3": lambda params: adamcore.SGD(params, lr=0.3),
}


def train(make_optimizer, data, epochs):
    """Train from zero weights; returns per-epoch (train loss, test loss) and
    the final test accuracy."""
    x_tr, y_tr, x_te, y_te = data
    w = np.zeros((x_tr.shape[1], 10), np.float32)
    b = np.zeros(10, np.float32)
    opt = make_optimizer([w, b])
    rng = np.random.default_rng(0)  # the same minibatches for every optimizer
    curves = []
    for _ in range(epochs):
        order = rng.permutation(len(x_tr))
        for start in range(0, len(x_tr), BATCH):
            batch = order[start:start + BATCH]
            _, grad_logits = softmax_cross_entropy(x_tr[batch] @ w + b, y_tr[batch])
            opt.step([x_tr[batch].T @ grad_logits, grad_logits.sum(axis=0)])
        curves.append((softmax_cross_entropy(x_tr @ w + b, y_tr)[0],
                       softmax_cross_entropy(x_te @ w + b, y_te)[0]))
    accuracy = np.mean((x_te @ w + b).argmax(axis=1) == y_te)
    return np.array(curves), accuracy


def main():
    args = parse_args(__doc__, fast_help="10 epochs instead of 100")
    epochs = 10 if args.fast else 100
    data = digits(np.float32)
    print(f"softmax regression on digits: {len(data[0])} train / {len(data[2])} test images, "
          f"{epochs} epochs of minibatches of {BATCH}")
    print(f"{'optimizer':<16} {'train loss':>10} {'test accuracy':>14}")
    results = {name: train(make, data, epochs) for name, make in OPTIMIZERS.items()}
    for name, (curves, accuracy) in results.items():
        print(f"{name:<16} {curves[-1, 0]:>10.4f} {accuracy:>14.4f}")

    plt = None if args.no_plot else pyplot()
    if plt is not None:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        epoch = np.arange(1, epochs + 1)
        for (name, (curves, _)), color in zip(results.items(), ("C0", "C1")):
            ax.semilogy(epoch, curves[:, 0], color=color, label=f"{name}, train")
            ax.semilogy(epoch, curves[:, 1], color=color, ls="--", label=f"{name}, test")
        ax.set(xlabel="epoch", ylabel="cross-entropy", title="softmax regression on digits")
        ax.legend()
        fig.tight_layout()
        save(fig, "softmax_digits.png")


if __name__ == "__main__":
    main()
