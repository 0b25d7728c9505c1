"""The types of row gradients: ``RowGrad``, a 2-D param's gradient as
(indices, rows), and ``Coalesced``, its order once duplicates are merged
(see adamcore.rows, which steps them). Their own module, so that every layer
(the binding, the reference, the optimizers) can know them without
importing the row step."""

from dataclasses import dataclass

import numpy as np

from adamcore import _validate

INDEX_DTYPES = (np.dtype(np.int32), np.dtype(np.int64))


class RowGrad:
    """The gradient of a 2-D param (N x D) as ``rows[k]`` for row
    ``indices[k]``: ``indices`` a 1-D int32/int64 array of K row numbers in
    [0, N), repeats allowed (they are summed); ``rows`` a C-contiguous K x D
    array of the param's dtype. Neither is copied or written: the step reads
    them in place."""

    __slots__ = ("indices", "rows")

    def __init__(self, indices, rows):
        for name, a in (("indices", indices), ("rows", rows)):
            if not isinstance(a, np.ndarray):
                raise TypeError(f"RowGrad {name} must be a numpy.ndarray, got {type(a).__name__}")
        if indices.dtype not in INDEX_DTYPES:
            raise TypeError(f"RowGrad indices must have dtype int32 or int64, got {indices.dtype}")
        if indices.ndim != 1:
            raise ValueError(f"RowGrad indices must be 1-D (one row number per row), "
                             f"got shape {indices.shape}")
        if rows.dtype not in _validate.FLOAT_DTYPES:
            raise TypeError(f"RowGrad rows must have dtype float32 or float64, got {rows.dtype}")
        if rows.ndim != 2 or rows.shape[0] != indices.shape[0]:
            raise ValueError(f"RowGrad rows must have shape (K, D) with K = len(indices) = "
                             f"{indices.shape[0]}, got {rows.shape}")
        for name, a in (("indices", indices), ("rows", rows)):
            if not a.flags.c_contiguous:
                raise ValueError(f"RowGrad {name} must be C-contiguous (it is read in place, "
                                 "never copied)")
            if not a.flags.aligned:
                raise ValueError(f"RowGrad {name} is not aligned to its dtype ({a.dtype})")
        self.indices, self.rows = indices, rows

    def __repr__(self):
        return (f"RowGrad({self.indices.shape[0]} rows of width {self.rows.shape[1]}, "
                f"{self.rows.dtype})")

    def to_dense(self, n_rows):
        """The dense N x D gradient it stands for (duplicates summed in input order)."""
        from adamcore import rows  # noqa: PLC0415 (rows imports this module)
        c = rows.coalesce(self.indices, n_rows)
        out = np.zeros((n_rows, self.rows.shape[1]), self.rows.dtype)
        out[c.unique] = rows.summed_rows(self.rows, c)
        return out


@dataclass(frozen=True, eq=False)
class Coalesced:
    """A RowGrad's coalesced order, int64 arrays: ``order`` the rows'
    positions in coalesced order, ``start`` each distinct index's first
    position in ``order`` (then K), ``unique`` the distinct indices,
    ascending (adamcore.rows: coalesce)."""
    order: np.ndarray
    start: np.ndarray
    unique: np.ndarray
