"""Data-parallel training of example 5's MLP over MPI, the optimizer state
sharded across the ranks (adamcore.distributed.ShardedOptimizer, ZeRO stage 2):

    mpiexec -n 2 python examples/06_data_parallel.py      # pip install "adamcore[mpi]"

Every global minibatch of 32 x P digits is split into P slices of 32, one
per rank; each rank computes the gradients of its slice, and the optimizer
averages them across ranks (an Alltoall, then a sum in rank order), steps
its shard of Adam's state and gathers the params back. Printed per epoch:
the training loss of this run, and of one process training on the same
global minibatches with the whole-batch gradient (the same up to rounding:
the mean of P slice gradients is the batch gradient, summed in another
order). Rank 0 also steps a single-process Adam on the rank-ordered mean of
the P slice gradients, which the sharded run equals bit for bit. Run without
mpiexec it is one rank, and everything above still holds.
"""

import importlib

import numpy as np
from mpi4py import MPI

import adamcore
from adamcore.distributed import ShardedOptimizer
from _common import digits, parse_args, softmax_cross_entropy

mlp = importlib.import_module("05_mlp_digits")  # its MLP: init_params, forward, gradients
SLICE, LR = 32, 1e-3
NAMES = ("w1", "b1", "w2", "b2")


def write_grads(grads, out):
    for view, g in zip(out.values(), grads):
        view[...] = g


def main():
    args = parse_args(__doc__, fast_help="3 epochs instead of 20")
    epochs = 3 if args.fast else 20
    comm = MPI.COMM_WORLD
    rank, n_ranks = comm.Get_rank(), comm.Get_size()
    x_tr, y_tr, _, _ = digits(np.float32)
    batch = SLICE * n_ranks
    steps = len(x_tr) // batch  # whole batches only: every rank's slice has SLICE images

    fp = adamcore.FlatParams(dict(zip(NAMES, mlp.init_params(x_tr.shape[1]))))
    opt = ShardedOptimizer(adamcore.Adam, fp, comm, stage=2, lr=LR)
    whole = adamcore.FlatParams(dict(zip(NAMES, mlp.init_params(x_tr.shape[1]))))
    whole_opt = adamcore.Adam([whole.flat], lr=LR)  # one process, whole-batch gradient
    exact = adamcore.FlatParams(dict(zip(NAMES, mlp.init_params(x_tr.shape[1]))))
    exact_opt = adamcore.Adam([exact.flat], lr=LR)  # one process, the P slice gradients
    gathered = np.empty((n_ranks, fp.flat.size), np.float32) if rank == 0 else None
    slice_grads = adamcore.FlatParams(dict(zip(NAMES, mlp.init_params(x_tr.shape[1]))))

    if rank == 0:
        print(f"MLP 64-{mlp.HIDDEN}-10 on digits, Adam lr={LR}, {n_ranks} rank(s): global "
              f"minibatches of {batch} ({SLICE} per rank), {steps} steps per epoch\n")
        print(f"{'epoch':>5} {'loss (sharded)':>15} {'loss (1 process)':>17} {'difference':>11}")
    rng = np.random.default_rng(1)  # the same minibatches on every rank
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(x_tr))
        for s in range(steps):
            idx = order[s * batch:(s + 1) * batch]
            mine = idx[rank * SLICE:(rank + 1) * SLICE]
            write_grads(mlp.gradients(list(fp.params.values()), x_tr[mine], y_tr[mine]),
                        fp.grads)
            comm.Gather(fp.flat_grad, gathered, root=0)
            opt.step()
            if rank == 0:
                write_grads(mlp.gradients(list(whole.params.values()), x_tr[idx], y_tr[idx]),
                            whole.grads)
                whole_opt.step([whole.flat_grad])
                total = gathered[0].copy()
                for r in range(1, n_ranks):
                    total += gathered[r]
                np.multiply(total, np.float32(1 / n_ranks), out=slice_grads.flat)
                exact_opt.step([slice_grads.flat])
        if rank == 0:
            ours = softmax_cross_entropy(mlp.forward(list(fp.params.values()), x_tr)[1], y_tr)[0]
            theirs = softmax_cross_entropy(mlp.forward(list(whole.params.values()), x_tr)[1],
                                           y_tr)[0]
            print(f"{epoch:>5} {ours:>15.6f} {theirs:>17.6f} {abs(ours - theirs):>11.2e}")
    state_bytes = comm.gather(opt.state_bytes, root=0)
    sent = comm.gather(opt.stats.bytes_sent // max(opt.stats.steps, 1), root=0)
    if rank == 0:
        same = fp.flat.tobytes() == exact.flat.tobytes()
        single = sum(a.nbytes for k, a in exact_opt.state[0].items() if k != "step")
        print(f"\nbitwise equal to one process on the rank-ordered mean of the slice "
              f"gradients: {'yes' if same else 'NO'}")
        print(f"optimizer state bytes per rank: {state_bytes} (one process: {single})")
        ideal = 2 * (n_ranks - 1) * fp.flat.nbytes // n_ranks
        print(f"bytes sent per rank per step: {sent} (an even split sends 2(P-1)/P of the "
              f"{fp.flat.nbytes}-byte params: {ideal})")


if __name__ == "__main__":
    main()
