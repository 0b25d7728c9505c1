"""The collectives of a sharded step, reproducible bit for bit.

- **Reduce-scatter** as ``Alltoallv`` of shards plus a local sum in rank
  order (csrc/rank_sum.c). MPI's own ``Allreduce`` and ``Reduce_scatter``
  add in an order that depends on the process count and the algorithm the
  library picks, so their sums differ from one process's in the last bits;
  an Alltoall moves the same bytes as a bandwidth-optimal reduce-scatter,
  (P-1)/P of the buffer per rank, and leaves the order to us. It runs in
  buckets of ``bucket`` elements per rank pair, so the extra memory is one
  P x bucket receive buffer, not the model.
- **Allgather** of the updated shards, in place in the flat buffer.
- **The norm**: each rank's block sums of squares, gathered on every rank
  and folded in the single-process order (ShardLayout.fold_order), so every
  rank computes the same norm, equal to one process's.

Counts and offsets are in elements of one MPI datatype; ``bytes_sent``
counts what this rank hands MPI for other ranks (the algorithmic traffic,
2(P-1)/P of the buffer per step at stage 2), not the library's internal
copies.
"""

import time
from dataclasses import dataclass

import numpy as np


@dataclass
class StepStats:
    """What this rank's steps cost so far, by part (``reset()`` zeroes it)."""

    steps: int = 0
    bytes_sent: int = 0
    reduce_seconds: float = 0.0   # the Alltoallv calls
    sum_seconds: float = 0.0      # the ordered local sums
    kernel_seconds: float = 0.0   # the fused step of this rank's shard
    gather_seconds: float = 0.0   # the Allgatherv calls (params; grads at stage 1)
    norm_seconds: float = 0.0     # gathering and folding the norm's block sums

    def reset(self):
        for name in self.__dataclass_fields__:
            setattr(self, name, type(getattr(self, name))())


class Exchange:
    """The collectives for one layout, dtype and communicator."""

    def __init__(self, mpi, comm, layout, dtype, bucket, rank_sum):
        self.mpi, self.comm, self.layout = mpi, comm, layout
        self.rank, self.size = comm.Get_rank(), comm.Get_size()
        self.itemsize = np.dtype(dtype).itemsize
        self.datatype = mpi.DOUBLE if np.dtype(dtype) == np.float64 else mpi.FLOAT
        self.lengths = [hi - lo for lo, hi in zip(layout.bounds[:-1], layout.bounds[1:])]
        self.bucket = max(1, min(bucket, max(self.lengths)))
        self.rounds = -(-max(self.lengths) // self.bucket) if max(self.lengths) else 0
        self.recv = np.zeros((self.size, self.bucket), dtype) if self.size > 1 else None
        self.rank_sum = rank_sum
        self.stats = StepStats()
        pieces = [layout.pieces(r) for r in range(self.size)]
        self.block_counts = [sum(p.n_blocks for p in ps) + 1 for ps in pieces]  # + the flag
        self.block_displs = np.cumsum([0] + self.block_counts[:-1]).tolist()
        flags = set(np.cumsum(self.block_counts) - 1)
        order = layout.fold_order()
        # fold_order indexes block sums without the flags: map to the gathered buffer
        with_flags = [i for i in range(sum(self.block_counts)) if i not in flags]
        self.fold_index = np.array([with_flags[i] for i in order], np.intp)
        self.flag_index = np.array(sorted(flags), np.intp)
        self.gathered = np.empty(sum(self.block_counts), np.float64)

    def reduce_scatter(self, grads, out, scale, n_threads):
        """out = this rank's shard of the sum over ranks of ``grads`` (each
        rank's full flat grads), added in rank order, times ``scale``."""
        bounds, lengths, bucket, size = self.layout.bounds, self.lengths, self.bucket, self.size
        recv_displs = [r * bucket for r in range(size)]
        for j in range(self.rounds):
            counts = [min(max(n - j * bucket, 0), bucket) for n in lengths]
            m = counts[self.rank]
            t0 = time.perf_counter()
            self.comm.Alltoallv(
                [grads, (counts, [bounds[r] + j * bucket for r in range(size)]), self.datatype],
                [self.recv, ([m] * size, recv_displs), self.datatype])
            t1 = time.perf_counter()
            if m:
                self.rank_sum(self.recv, out[j * bucket:j * bucket + m], scale, n_threads)
            self.stats.reduce_seconds += t1 - t0
            self.stats.sum_seconds += time.perf_counter() - t1
            self.stats.bytes_sent += (sum(counts) - m) * self.itemsize

    def allgather(self, flat):
        """Every rank's shard of ``flat`` (a full-size buffer) to every rank."""
        t0 = time.perf_counter()
        self.comm.Allgatherv(self.mpi.IN_PLACE,
                             [flat, (self.lengths, list(self.layout.bounds[:-1])),
                              self.datatype])
        self.stats.gather_seconds += time.perf_counter() - t0
        self.stats.bytes_sent += self.lengths[self.rank] * (self.size - 1) * self.itemsize

    def norm(self, local_sums, local_nonfinite, fold):
        """(sum of squares, any element non-finite) over every rank's block
        sums, folded in the single-process order; the same on every rank."""
        t0 = time.perf_counter()
        send = np.empty(len(local_sums) + 1, np.float64)
        send[:-1] = local_sums
        send[-1] = 1.0 if local_nonfinite else 0.0
        self.comm.Allgatherv(send, [self.gathered, (self.block_counts, self.block_displs),
                                    self.mpi.DOUBLE])
        total = fold(self.gathered[self.fold_index])
        nonfinite = bool(self.gathered[self.flag_index].any())
        self.stats.norm_seconds += time.perf_counter() - t0
        return total, nonfinite
