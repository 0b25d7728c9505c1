"""Adam with float32, bfloat16 and int8 state (``state_dtype``) on the digits
MLP of example 05, three seeds each, and the drift of low-precision state
from float32 state over 1000 steps of one fixed gradient sequence, next to
bitsandbytes' own Adam8bit on the same sequence (where it is installed).

The MLP's first layer (64 x 64 = 4096 weights) is the one param large
enough for int8 state (params under 4096 elements keep float32 state, as
bitsandbytes' min_8bit_size); bfloat16 applies to all four.
"""

import importlib.util
import pathlib

import numpy as np

import adamcore
from _common import digits, parse_args, pyplot, save

_spec = importlib.util.spec_from_file_location(
    "mlp_digits", pathlib.Path(__file__).with_name("05_mlp_digits.py"))
mlp = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(mlp)

STATE_DTYPES = (None, "bfloat16", "int8")
SEEDS = (0, 1, 2)


def train(state_dtype, data, epochs, seed):
    """Example 05's training loop with init and minibatch order from ``seed``."""
    x_tr, y_tr, x_te, y_te = data
    params = mlp.init_params(x_tr.shape[1], seed=seed)
    opt = adamcore.Adam(params, lr=1e-3, state_dtype=state_dtype, seed=seed)
    rng = np.random.default_rng(100 + seed)
    history = []
    for _ in range(epochs):
        order = rng.permutation(len(x_tr))
        for start in range(0, len(x_tr), mlp.BATCH):
            batch = order[start:start + mlp.BATCH]
            opt.step(mlp.gradients(params, x_tr[batch], y_tr[batch]))
        loss = mlp.softmax_cross_entropy(mlp.forward(params, x_tr)[1], y_tr)[0]
        accuracy = np.mean(mlp.forward(params, x_te)[1].argmax(axis=1) == y_te)
        history.append((loss, accuracy))
    return np.array(history)


def drift(steps, n=2 ** 16):
    """Relative deviation ||p - p_f32|| / ||p_f32 - p_0|| after ``steps`` steps
    of one fixed gradient sequence (noisy gradients of a quadratic), for
    adamcore's bfloat16 and int8 state and bitsandbytes' Adam8bit."""
    rng = np.random.default_rng(0)
    p0 = rng.standard_normal(n).astype(np.float32)
    target = rng.standard_normal(n).astype(np.float32)
    noise = [np.random.default_rng(1000 + k).standard_normal(n).astype(np.float32)
             for k in range(16)]

    def grad(p, k):
        return (p - target) + noise[k % len(noise)] * np.float32(0.5)

    out = {}
    ref = None
    for sd in STATE_DTYPES:
        p = p0.copy()
        opt = adamcore.Adam([p], lr=1e-3, state_dtype=sd)
        for k in range(steps):
            opt.step([grad(p, k)])
        if sd is None:
            ref = p
        else:
            out[f"adamcore {sd}"] = p
    try:
        import bitsandbytes as bnb
        import torch
    except ImportError:
        print("bitsandbytes' Adam8bit skipped: pip install torch bitsandbytes")
    else:
        for name, cls in (("bitsandbytes Adam (float32)", torch.optim.Adam),
                          ("bitsandbytes Adam8bit", bnb.optim.Adam8bit)):
            tp = torch.nn.Parameter(torch.from_numpy(p0.copy()))
            opt = cls([tp], lr=1e-3) if cls is torch.optim.Adam else cls([tp], lr=1e-3,
                                                                         min_8bit_size=4096)
            for k in range(steps):
                tp.grad = torch.from_numpy(grad(tp.detach().numpy(), k))
                opt.step()
            out[name] = tp.detach().numpy().copy()
        torch_ref = out.pop("bitsandbytes Adam (float32)")
        print(f"  (torch Adam float32 vs adamcore float32: relative deviation "
              f"{np.linalg.norm(torch_ref - ref) / np.linalg.norm(ref - p0):.2e})")
    return {name: float(np.linalg.norm(p - ref) / np.linalg.norm(ref - p0))
            for name, p in out.items()}


def main():
    args = parse_args(__doc__, fast_help="3 epochs and 100 drift steps instead of 40 and 1000")
    epochs, steps = (3, 100) if args.fast else (40, 1000)
    data = digits(np.float32)
    runs = {sd: [train(sd, data, epochs, seed) for seed in SEEDS] for sd in STATE_DTYPES}
    base = np.mean([h[-1, 1] for h in runs[None]])
    print(f"digits MLP, {epochs} epochs, seeds {SEEDS}: final test accuracy")
    print(f"{'state_dtype':<12} {'per seed':<26} {'mean':>7} {'vs float32, pp':>15}")
    for sd, hs in runs.items():
        acc = [h[-1, 1] for h in hs]
        print(f"{str(sd or 'float32'):<12} {' '.join(f'{a:.4f}' for a in acc):<26} "
              f"{np.mean(acc):>7.4f} {100 * (np.mean(acc) - base):>+15.2f}")
    print(f"\nafter {steps} steps of one gradient sequence (2^16 params), relative deviation "
          "from adamcore's float32-state run:")
    for name, dev in drift(steps).items():
        print(f"  {name:<28} {dev:.3e}")

    plt = None if args.no_plot else pyplot()
    if plt is not None:
        fig, ax = plt.subplots(figsize=(7, 4.2))
        epoch = np.arange(1, epochs + 1)
        for (sd, hs), color in zip(runs.items(), ("C0", "C1", "C2")):
            for k, h in enumerate(hs):
                ax.semilogy(epoch, h[:, 0], color=color, alpha=0.8, ls=("-", "--", ":")[k],
                            label=f"{sd or 'float32'} state" if k == 0 else None)
        ax.set(xlabel="epoch", ylabel="training cross-entropy",
               title="digits MLP: Adam with float32, bfloat16 and int8 state (3 seeds each)")
        ax.legend()
        fig.tight_layout()
        save(fig, "low_precision_state.png")


if __name__ == "__main__":
    main()
