"""A 64-64-10 tanh MLP on scikit-learn's digits with seven adamcore optimizers,
and the time of adamcore.Adam's steps next to textbook NumPy Adam's.

The network, its forward and backward passes are NumPy, float32, written out
below; every optimizer starts from the same weights and sees the same
minibatches of 32. The learning rates are usual ones for each method, not tuned.
Adam, AdamW and AMSGrad nearly coincide here: AdamW's decay shrinks weights by
only lr * 0.01 = 1e-5 per step, and AMSGrad differs from Adam only where v has
fallen below its past maximum.
"""

import time

import numpy as np

import adamcore
from adamcore import textbook
from _common import digits, parse_args, pyplot, save, softmax_cross_entropy

HIDDEN, BATCH = 64, 32
OPTIMIZERS = {
    "Adam": lambda ps: adamcore.Adam(ps, lr=1e-3),
    "AdamW": lambda ps: adamcore.AdamW(ps, lr=1e-3, weight_decay=1e-2),
    "AMSGrad": lambda ps: adamcore.Adam(ps, lr=1e-3, amsgrad=True),
    "RMSprop": lambda ps: adamcore.RMSprop(ps, lr=1e-3),
    "Adagrad": lambda ps: adamcore.Adagrad(ps, lr=0.01),
    "SGD+momentum": lambda ps: adamcore.SGD(ps, lr=0.05, momentum=0.9),
    "AdaBelief": lambda ps: adamcore.AdaBelief(ps, lr=1e-3),
}


def init_params(n_in, seed=0):
    """W1, b1, W2, b2 with weights ~ N(0, 1 / fan_in), which keeps tanh
    units out of saturation at the start."""
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((n_in, HIDDEN)) / np.sqrt(n_in)).astype(np.float32),
            np.zeros(HIDDEN, np.float32),
            (rng.standard_normal((HIDDEN, 10)) / np.sqrt(HIDDEN)).astype(np.float32),
            np.zeros(10, np.float32)]


def forward(params, x):
    w1, b1, w2, b2 = params
    hidden = np.tanh(x @ w1 + b1)
    return hidden, hidden @ w2 + b2


def gradients(params, x, y):
    """The gradients of the cross-entropy on (x, y), in the order of params."""
    w2 = params[2]
    hidden, logits = forward(params, x)
    _, g_logits = softmax_cross_entropy(logits, y)
    g_hidden = (g_logits @ w2.T) * (1 - hidden**2)  # tanh' = 1 - tanh^2
    return [x.T @ g_hidden, g_hidden.sum(axis=0), hidden.T @ g_logits, g_logits.sum(axis=0)]


class TextbookAdam:
    """adamcore.textbook.adam_step on each param, behind the optimizers' step()."""

    def __init__(self, params, lr=1e-3):
        self.params, self.lr, self.t = params, lr, 0
        self.moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]

    def step(self, grads):
        self.t += 1
        for p, g, (m, v) in zip(self.params, grads, self.moments):
            textbook.adam_step(p, g, m, v, self.t, lr=self.lr)


def train(make_optimizer, data, epochs):
    """Train a fresh MLP; returns per-epoch (train loss, test accuracy)."""
    x_tr, y_tr, x_te, y_te = data
    params = init_params(x_tr.shape[1])
    opt = make_optimizer(params)
    rng = np.random.default_rng(1)  # the same minibatches for every optimizer
    history = []
    for _ in range(epochs):
        order = rng.permutation(len(x_tr))
        for start in range(0, len(x_tr), BATCH):
            batch = order[start:start + BATCH]
            opt.step(gradients(params, x_tr[batch], y_tr[batch]))
        train_loss = softmax_cross_entropy(forward(params, x_tr)[1], y_tr)[0]
        accuracy = np.mean(forward(params, x_te)[1].argmax(axis=1) == y_te)
        history.append((train_loss, accuracy))
    return np.array(history)


def time_epoch_of_steps(data, steps, repeats):
    """Median seconds of ``steps`` calls (one epoch's worth) of adamcore.Adam's
    and textbook Adam's step on the MLP's params, with fixed grads; and of
    forward + backward on a minibatch, for scale. The three are sampled in
    turn, so a busy machine slows them alike."""
    x, y = data[0][:BATCH], data[1][:BATCH]
    params = init_params(x.shape[1])
    rng = np.random.default_rng(2)
    grads = [rng.standard_normal(p.shape).astype(np.float32) for p in params]
    calls = {"adamcore.Adam": adamcore.Adam(init_params(x.shape[1])).step,
             "textbook NumPy Adam": TextbookAdam(init_params(x.shape[1])).step,
             "forward + backward": lambda _: gradients(params, x, y)}
    samples = {name: [] for name in calls}
    for _ in range(repeats):
        for name, call in calls.items():
            t0 = time.perf_counter()
            for _ in range(steps):
                call(grads)
            samples[name].append(time.perf_counter() - t0)
    return {name: np.median(times) for name, times in samples.items()}


def main():
    args = parse_args(__doc__, fast_help="3 epochs instead of 40")
    epochs = 3 if args.fast else 40
    data = digits(np.float32)
    n_params = sum(p.size for p in init_params(data[0].shape[1]))
    steps = -(-len(data[0]) // BATCH)
    print(f"MLP 64-{HIDDEN}-10 (tanh, float32, {n_params} params) on digits: "
          f"{len(data[0])} train / {len(data[2])} test images, {epochs} epochs "
          f"of {steps} minibatches of {BATCH}")

    runs = {name: train(make, data, epochs) for name, make in OPTIMIZERS.items()}
    reference = train(TextbookAdam, data, epochs)
    print(f"\n{'optimizer':<22} {'train loss':>10} {'test accuracy':>14}")
    for name, h in {**runs, "Adam (textbook NumPy)": reference}.items():
        print(f"{name:<22} {h[-1, 0]:>10.4f} {h[-1, 1]:>14.4f}")

    repeats = 5 if args.fast else 51
    t = time_epoch_of_steps(data, steps, repeats)
    ours, theirs = t["adamcore.Adam"], t["textbook NumPy Adam"]
    print(f"""
Timed: {steps} optimizer steps (one epoch's worth, each updating all four param
arrays, {n_params} floats) on the MLP's params with fixed grads, median of {repeats}
samples taken in turn. For scale: forward + backward of {steps} minibatches of {BATCH}
take {t["forward + backward"] * 1e3:.3f} ms. The textbook run above learns what
adamcore.Adam learns: it is the same algorithm.
optimizer steps per epoch: adamcore.Adam {ours * 1e3:.3f} ms, textbook NumPy Adam \
{theirs * 1e3:.3f} ms: adamcore {theirs / ours:.1f}x faster""")

    plt = None if args.no_plot else pyplot()
    if plt is not None:
        fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4.2))
        epoch = np.arange(1, epochs + 1)
        # Line styles keep the three near-identical Adams apart.
        styles = {"AdamW": "--", "AMSGrad": ":"}
        for name, h in runs.items():
            ax_loss.semilogy(epoch, h[:, 0], ls=styles.get(name, "-"), label=name)
            ax_acc.plot(epoch, h[:, 1], ls=styles.get(name, "-"), label=name)
        ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="training loss")
        ax_acc.set(xlabel="epoch", ylabel="accuracy", title="test accuracy", ylim=(0.8, 1))
        ax_loss.legend(fontsize=8)
        fig.suptitle(f"MLP 64-{HIDDEN}-10 on scikit-learn digits, adamcore optimizers")
        fig.tight_layout()
        save(fig, "mlp_digits.png")


if __name__ == "__main__":
    main()
