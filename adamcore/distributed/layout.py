"""Where each rank's shard of a flat parameter buffer lies (no MPI here).

The params are views into one flat buffer (adamcore.FlatParams); the buffer
is cut into P contiguous shards, one per rank. A cut is only ever made where
the grad-norm kernel starts a block (csrc/grad_norm.c: every
``NORM_BLOCK``-th element of each param, counted from the param's start), so
each block's sum of squares is taken whole by one rank and the norm folds
the same block sums in the same order as one process would. Among those
places the cut nearest the even split is taken, preferring one on a 64-byte
line (every cut inside the first param is one, since FlatParams starts the
buffer on a line). A rank's **pieces** are the parts of params inside its
shard, in the optimizer's param order.
"""

import bisect
from dataclasses import dataclass

from adamcore.reference import NORM_BLOCK

LINE = 64


@dataclass(frozen=True)
class Piece:
    """The part ``[lo, hi)`` (element offsets, raveled) of param ``param``
    (its index in the optimizer's order) that one shard holds; it starts at
    ``flat`` in the flat buffer."""

    param: int
    lo: int
    hi: int
    flat: int

    @property
    def size(self):
        return self.hi - self.lo

    @property
    def n_blocks(self):
        """Norm blocks of the piece: ``lo`` is on a block edge of its param."""
        return -(-self.size // NORM_BLOCK)


@dataclass(frozen=True)
class ShardLayout:
    """The cut of an ``n``-element flat buffer into ``len(bounds) - 1``
    shards: rank r holds ``[bounds[r], bounds[r + 1])``. ``spans`` are the
    params' (flat offset, size), in the optimizer's order."""

    n: int
    spans: tuple
    bounds: tuple

    @classmethod
    def build(cls, spans, n, n_ranks, itemsize):
        """The layout of params at ``spans`` over ``n_ranks`` shards."""
        if n_ranks < 1:
            raise ValueError(f"n_ranks must be >= 1, got {n_ranks}")
        cuts = sorted({n} | {start + k for start, size in spans
                             for k in range(0, size, NORM_BLOCK)})
        per_line = LINE // itemsize
        aligned = [c for c in cuts if c % per_line == 0]
        bounds = [0]
        for r in range(1, n_ranks):
            ideal = n * r // n_ranks
            best = _nearest(aligned, ideal)
            if best is None or abs(best - ideal) > NORM_BLOCK:
                best = _nearest(cuts, ideal)
            bounds.append(max(best, bounds[-1]))
        bounds.append(n)
        return cls(n=n, spans=tuple(spans), bounds=tuple(bounds))

    @property
    def n_ranks(self):
        return len(self.bounds) - 1

    def shard(self, rank):
        """(lo, hi): rank's range of the flat buffer."""
        return self.bounds[rank], self.bounds[rank + 1]

    def pieces(self, rank):
        """Rank's pieces, in the optimizer's param order."""
        lo, hi = self.shard(rank)
        out = []
        for i, (start, size) in enumerate(self.spans):
            a, b = max(lo, start), min(hi, start + size)
            if a < b:
                out.append(Piece(param=i, lo=a - start, hi=b - start, flat=a))
        return tuple(out)

    def fold_order(self):
        """Indices into the concatenation, in rank order, of every rank's
        piece block sums that put them in the single-process norm's order:
        param by param in the optimizer's order, each param's blocks from
        its start."""
        keyed, offset = [], 0
        for rank in range(self.n_ranks):
            for piece in self.pieces(rank):
                for b in range(piece.n_blocks):
                    keyed.append(((piece.param, piece.lo + b * NORM_BLOCK), offset + b))
                offset += piece.n_blocks
        return [index for _, index in sorted(keyed)]


def _nearest(sorted_values, x):
    """The value of ``sorted_values`` nearest ``x`` (the lower on a tie), or None."""
    if not sorted_values:
        return None
    k = bisect.bisect_left(sorted_values, x)
    candidates = sorted_values[max(k - 1, 0):k + 1]
    return min(candidates, key=lambda c: (abs(c - x), c))
