"""A torch.nn MLP on scikit-learn's digits trained with adamcore.torch.AdamW,
next to torch.optim.AdamW(fused=True): the same loss curve, and the time of
each optimizer's steps.

Both models start from the same weights and see the same minibatches of 32;
the only difference is the optimizer class (adamcore.torch.AdamW is a
torch.optim.Optimizer: model.parameters(), loss.backward(), opt.step(),
opt.zero_grad() and torch's LR schedulers work unchanged). The two curves
agree to float32 rounding (torch groups a few operations differently). Step
times are medians over every step of the run, timed around opt.step() only.
"""

import statistics
import time

import numpy as np
import torch

import adamcore.torch
from _common import digits, parse_args, pyplot, save

HIDDEN, BATCH = 64, 32
OPTIMIZERS = {
    "adamcore.torch.AdamW": lambda ps: adamcore.torch.AdamW(ps, lr=1e-3, weight_decay=1e-2),
    "torch.optim.AdamW(fused=True)": lambda ps: torch.optim.AdamW(ps, lr=1e-3, weight_decay=1e-2,
                                                                  fused=True),
}


def model(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(64, HIDDEN), torch.nn.Tanh(),
                               torch.nn.Linear(HIDDEN, 10))


def train(make_opt, data, epochs, seed=0):
    """Per epoch: (mean train loss, test accuracy); and every step's time."""
    x_tr, y_tr, x_te, y_te = data
    net = model()
    opt = make_opt(net.parameters())
    rng = np.random.default_rng(seed)
    curve, step_times = [], []
    for _ in range(epochs):
        order = rng.permutation(len(x_tr))
        losses = []
        for start in range(0, len(order), BATCH):
            idx = order[start:start + BATCH]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(x_tr[idx]), y_tr[idx])
            loss.backward()
            t0 = time.perf_counter()
            opt.step()
            step_times.append(time.perf_counter() - t0)
            losses.append(loss.item())
        with torch.no_grad():
            accuracy = (net(x_te).argmax(1) == y_te).double().mean().item()
        curve.append((float(np.mean(losses)), accuracy))
    return curve, step_times


def main():
    args = parse_args(__doc__, fast_help="5 epochs instead of 30")
    epochs = 5 if args.fast else 30
    torch.set_num_threads(1)
    x_tr, y_tr, x_te, y_te = digits(np.float32)
    data = (torch.from_numpy(x_tr), torch.from_numpy(y_tr), torch.from_numpy(x_te),
            torch.from_numpy(y_te))
    results = {name: train(make, data, epochs) for name, make in OPTIMIZERS.items()}
    names = list(results)
    print("train loss per epoch (and test accuracy), same weights and minibatches:")
    print(f"{'epoch':>6} " + " ".join(f"{n:>32}" for n in names))
    for e in range(epochs):
        cells = [f"{results[n][0][e][0]:>21.6f} {results[n][0][e][1]:>10.4f}" for n in names]
        print(f"{e + 1:>6} " + " ".join(cells))
    final = [results[n][0][-1][0] for n in names]
    print(f"final train loss relative difference: {abs(final[0] - final[1]) / final[1]:.2e}")
    print("\noptimizer step, median over all steps (1 torch thread, 4 tensors, 4810 params):")
    medians = {n: statistics.median(results[n][1]) * 1e6 for n in names}
    for n in names:
        print(f"  {n:<32} {medians[n]:8.1f} us")
    print(f"  speedup {medians[names[1]] / medians[names[0]]:.2f}x")

    plt = None if args.no_plot else pyplot()
    if plt is not None:
        fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
        for n, style in zip(names, ("-", "--")):
            curve = results[n][0]
            ax_loss.plot(range(1, epochs + 1), [c[0] for c in curve], style, label=n)
            ax_acc.plot(range(1, epochs + 1), [c[1] for c in curve], style, label=n)
        ax_loss.set(xlabel="epoch", ylabel="mean train loss", yscale="log")
        ax_acc.set(xlabel="epoch", ylabel="test accuracy")
        ax_loss.legend()
        fig.suptitle("torch.nn MLP on digits: adamcore.torch.AdamW vs torch fused AdamW")
        fig.tight_layout()
        save(fig, "torch_mlp_digits.png")


if __name__ == "__main__":
    main()
