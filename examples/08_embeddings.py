"""Matrix factorisation with row gradients: SparseAdam, lazy Adam and
dense-equivalent Adam train the same embedding tables on the same minibatches.

The data is made here (fixed seeds, nothing downloaded): a rank-8 ratings
matrix of 20,000 users x 5,000 items plus noise of sd 0.1, observed where
1,000,000 (user, item) draws land, users and items picked with a Zipf-like
popularity (weight 1 / rank), so a few rows are hit often and most rarely;
10% of the observed ratings are held out. The model is a user table U and an
item table V (float32, width 16), predicting sum(U[u] * V[i]); each step
draws 1024 training ratings, computes the mean squared error's gradient with
respect to the rows it looked up, in NumPy, and passes the tables'
gradients as adamcore.RowGrad(indices, rows), one row per lookup: a user or
item drawn twice in a batch has two rows, which the step sums.

- SparseAdam (torch.optim.SparseAdam) and Adam(lazy=True) (LazyAdam) update
  only the rows looked up; they differ only in where eps sits and in
  rounding, so their curves coincide.
- Adam given RowGrads is the dense step on the gradient they stand for: rows
  not looked up see a zero gradient, and their momentum keeps moving them.
  It is checked bit for bit against Adam stepping the materialised dense
  gradient (RowGrad.to_dense) on the same minibatches. Here it leads for the
  first ~2000 steps, then its train MSE levels off near 0.04 while the other
  two keep going down.

Step times are medians over every step, timed around opt.step() only, on one
thread, so that they compare the work each semantics does (rows looked up,
or the whole tables) rather than the machine's cores.
"""

import time

import numpy as np

import adamcore
from adamcore import RowGrad
from _common import parse_args, pyplot, save

N_USERS, N_ITEMS, RANK, NOISE, N_DRAWS = 20_000, 5_000, 8, 0.1, 1_000_000
WIDTH, BATCH, LR = 16, 1024, 0.01
OPTIMIZERS = {  # label: (optimizer, whether its step gets the materialised dense gradient)
    "SparseAdam": (lambda ps: adamcore.SparseAdam(ps, lr=LR, n_threads=1), False),
    "Adam(lazy=True)": (lambda ps: adamcore.Adam(ps, lr=LR, lazy=True, n_threads=1), False),
    "Adam, RowGrad (dense-equivalent)": (lambda ps: adamcore.Adam(ps, lr=LR, n_threads=1), False),
    "Adam, dense gradient": (lambda ps: adamcore.Adam(ps, lr=LR, n_threads=1), True),
}


def popularity(rng, n):
    """Zipf-like weights 1 / rank, shuffled so popular ids are scattered."""
    w = 1 / np.arange(1, n + 1)
    return rng.permutation(w / w.sum())


def ratings(seed=0):
    """(train, held-out) as (users, items, ratings) arrays: int32, int32, float32."""
    rng = np.random.default_rng(seed)
    # Factors of sd RANK**-0.25 give ratings of sd ~1.
    u_true = rng.standard_normal((N_USERS, RANK)) / RANK**0.25
    v_true = rng.standard_normal((N_ITEMS, RANK)) / RANK**0.25
    users = rng.choice(N_USERS, N_DRAWS, p=popularity(rng, N_USERS))
    items = rng.choice(N_ITEMS, N_DRAWS, p=popularity(rng, N_ITEMS))
    pairs = rng.permutation(np.unique(users * N_ITEMS + items))  # each entry observed once
    users, items = (pairs // N_ITEMS).astype(np.int32), (pairs % N_ITEMS).astype(np.int32)
    r = (u_true[users] * v_true[items]).sum(axis=1) + NOISE * rng.standard_normal(len(pairs))
    data = (users, items, r.astype(np.float32))
    n_held_out = len(pairs) // 10
    return tuple(a[n_held_out:] for a in data), tuple(a[:n_held_out] for a in data)


def mse(tables, data):
    (U, V), (users, items, r) = tables, data
    return float(np.mean(((U[users] * V[items]).sum(axis=1) - r) ** 2))


def train(make_optimizer, materialise, train_data, held_out, steps, eval_every):
    """Train fresh tables; returns the (step, train MSE, held-out RMSE) curve,
    every step's time, every materialisation's time (none unless
    ``materialise``) and the final tables."""
    rng = np.random.default_rng(1)
    tables = [(0.1 * rng.standard_normal((n, WIDTH))).astype(np.float32)
              for n in (N_USERS, N_ITEMS)]
    U, V = tables
    opt = make_optimizer(tables)
    users, items, r = train_data
    batches = np.random.default_rng(2)  # the same minibatches for every optimizer
    curve, times, to_dense_times = [], [], []
    for step in range(1, steps + 1):
        k = batches.integers(0, len(r), BATCH)
        u, i = users[k], items[k]
        u_rows, v_rows = U[u], V[i]
        err = (u_rows * v_rows).sum(axis=1) - r[k]
        scale = (2 / BATCH) * err[:, None]  # d(mean squared error) / d(prediction)
        grads = [RowGrad(u, scale * v_rows), RowGrad(i, scale * u_rows)]
        if materialise:
            t0 = time.perf_counter()
            grads = [g.to_dense(len(t)) for g, t in zip(grads, tables)]
            to_dense_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        opt.step(grads)
        times.append(time.perf_counter() - t0)
        if step % eval_every == 0:
            curve.append((step, mse(tables, train_data), np.sqrt(mse(tables, held_out))))
    return np.array(curve), np.array(times), np.array(to_dense_times), tables


def main():
    args = parse_args(__doc__, fast_help="1000 steps instead of 5000")
    steps = 1000 if args.fast else 5000
    train_data, held_out = ratings()
    per_user = np.bincount(train_data[0], minlength=N_USERS)
    per_item = np.bincount(train_data[1], minlength=N_ITEMS)
    print(f"ratings: {N_USERS} users x {N_ITEMS} items, rank {RANK}, noise sd {NOISE}; "
          f"{len(train_data[2])} train / {len(held_out[2])} held-out observed entries")
    print(f"ratings per user: max {per_user.max()}, median {np.median(per_user):g}; "
          f"per item: max {per_item.max()}, median {np.median(per_item):g}")
    batches = np.random.default_rng(3).integers(0, len(train_data[2]), (20, BATCH))
    distinct = [np.mean([len(np.unique(ids[k])) for k in batches]) for ids in train_data[:2]]
    print(f"a batch of {BATCH} ratings looks up ~{distinct[0]:.0f} distinct users "
          f"({distinct[0] / N_USERS:.1%} of U's rows) and ~{distinct[1]:.0f} distinct items "
          f"({distinct[1] / N_ITEMS:.1%} of V's)")
    print(f"held-out RMSE of predicting 0: {np.sqrt(np.mean(held_out[2] ** 2)):.4f}; "
          f"the noise alone: {NOISE}")
    print(f"model: U {N_USERS}x{WIDTH}, V {N_ITEMS}x{WIDTH} (float32), lr {LR}, "
          f"{steps} steps of {BATCH} ratings")

    eval_every = steps // 25
    runs = {name: train(make, materialise, train_data, held_out, steps, eval_every)
            for name, (make, materialise) in OPTIMIZERS.items()}
    print(f"\n{'optimizer':<34} {'train MSE':>10} {'held-out RMSE':>14} {'step (us)':>10}")
    for name, (curve, times, _, _) in runs.items():
        print(f"{name:<34} {curve[-1, 1]:>10.4f} {curve[-1, 2]:>14.4f} "
              f"{np.median(times) * 1e6:>10.1f}")
    dense = runs["Adam, dense gradient"]
    equal = all(np.array_equal(a, b)
                for a, b in zip(runs["Adam, RowGrad (dense-equivalent)"][3], dense[3]))
    print(f"""
step (us): median time of opt.step() over all {steps} steps, one thread. The dense
gradient's is the step alone; materialising the two gradients (RowGrad.to_dense)
took a median {np.median(dense[2]) * 1e6:.1f} us more per step.
Adam with RowGrads vs Adam on the materialised dense gradient, tables after \
{steps} steps: {"bitwise equal" if equal else "DIFFERENT"}""")

    plt = None if args.no_plot else pyplot()
    if plt is not None:
        fig, (ax_train, ax_held) = plt.subplots(1, 2, figsize=(11, 4.2))
        # SparseAdam and lazy Adam coincide: the dashes keep both visible.
        for name, style in zip(list(runs)[:3], ("-", "--", "-")):
            curve = runs[name][0]
            ax_train.semilogy(curve[:, 0], curve[:, 1], style, label=name)
            ax_held.plot(curve[:, 0], curve[:, 2], style, label=name)
        ax_train.set(xlabel="step", ylabel="mean squared error", title="train MSE")
        ax_held.set(xlabel="step", ylabel="RMSE", title="held-out RMSE")
        ax_held.legend()
        fig.suptitle(f"matrix factorisation, {N_USERS} users x {N_ITEMS} items, width {WIDTH}: "
                     "row gradients with three Adam semantics")
        fig.tight_layout()
        save(fig, "embeddings.png")


if __name__ == "__main__":
    main()
