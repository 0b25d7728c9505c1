"""Data-parallel training across processes and machines: one adamcore
optimizer's state sharded over MPI ranks (ZeRO stages 1 and 2), bitwise
the single-process step for any number of ranks.

    # mpiexec -n 4 python train.py
    import adamcore
    from adamcore.distributed import ShardedOptimizer

    fp = adamcore.FlatParams({"w": w0, "b": b0})       # the same on every rank
    opt = ShardedOptimizer(adamcore.AdamW, fp, lr=1e-3)
    for x, y in my_shard_of_the_data:
        write_grads(fp.params, x, y, out=fp.grads)       # this rank's grads
        opt.step()                                       # every rank's fp.flat updated

Install: ``pip install "adamcore[mpi]"`` brings mpi4py and MPICH's wheel
from PyPI, which runs on one machine (``mpiexec -n 4 python train.py``; no
extra flags, as root or not). With Open MPI's wheel instead, running as
root needs ``--allow-run-as-root`` and more ranks than cores
``--oversubscribe``. On a cluster, use the site's MPI and interconnect:
``pip install adamcore`` and then ``pip install --no-binary=mpi4py mpi4py``
with the site's ``mpicc`` first on PATH (``module load mpi``), so mpi4py
builds against it; launch with the site's ``mpiexec`` or ``srun``. Nothing
here depends on which MPI runs it. ``import adamcore`` never imports
mpi4py; this module imports it only when an optimizer is built.

Why not ``Allreduce``: MPI sums in an order that depends on the number of
processes and the library's algorithm, so its results can differ from a
single process's in the last bits. adamcore.distributed.exchange reduces
with an Alltoall and a sum in rank order instead, which moves the same bytes
as a reduce-scatter.

Modules: ``layout`` (the shards, no MPI), ``exchange`` (the collectives),
``agree`` (every rank refuses together), ``state`` (global state in and
out: state_dict, checkpoints), ``sharded`` (ShardedOptimizer).
"""

from adamcore.distributed.exchange import StepStats
from adamcore.distributed.layout import Piece, ShardLayout
from adamcore.distributed.sharded import ShardedOptimizer

__all__ = ["StepStats", "Piece", "ShardLayout", "ShardedOptimizer"]
