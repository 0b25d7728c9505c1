"""Agreement across ranks before anything is changed.

A check that fails on one rank only must fail on every rank, with the same
error, before the first exchange: otherwise the other ranks would wait in a
collective the failing rank never enters (a hang), or step while it does
not (state that no longer matches). Values that must be equal on every rank
(the options a step uses, a state_dict's contents) are compared by a digest
in the same collective, so a rank with another learning rate cannot step
silently out of line. ``agree`` costs one Allreduce of three integers when
every rank passed and agrees, and a gather of the messages only when not.
"""

import builtins
import json
import zlib

import numpy as np

from adamcore.checkpoint import _plain


def digest(*parts):
    """A 32-bit digest of ``parts``, the same in every process (unlike
    ``hash``, which is salted per process for strings): the bytes of arrays,
    the JSON of anything else, with NumPy scalars as the Python numbers of
    the same value (so ``np.float64(0.01)`` and ``0.01`` agree; floats are
    written exactly)."""
    crc = 0
    for part in parts:
        if isinstance(part, np.ndarray):
            crc = zlib.crc32(repr((part.dtype.str, part.shape)).encode(), crc)
            crc = zlib.crc32(np.ascontiguousarray(part).view(np.uint8).reshape(-1), crc)
        else:
            crc = zlib.crc32(json.dumps(part, default=_plain, sort_keys=True).encode(), crc)
    return crc


def agree(mpi, comm, error, what, value=None, about="the values"):
    """Raise on every rank if ``error`` (this rank's exception, or None) is
    set on any rank, or if ``value`` (a digest, or None) differs between
    ranks. The first failing rank's error is raised everywhere, of its type
    where that is a builtin exception (else a RuntimeError), its message
    prefixed by ``what`` and its rank; a digest mismatch is a ValueError
    saying that the ranks disagree on ``about``. Collective: every rank
    calls it at the same point."""
    v = -1 if value is None else int(value)
    mine = np.array([0 if error is None else 1, v, -v], np.int64)
    top = np.zeros(3, np.int64)
    comm.Allreduce(mine, top, op=mpi.MAX)
    if top[0]:
        report = None if error is None else (type(error).__name__, str(error))
        reports = comm.allgather(report)
        rank, (name, message) = next((r, rep) for r, rep in enumerate(reports)
                                     if rep is not None)
        kind = getattr(builtins, name, None)
        if not (isinstance(kind, type) and issubclass(kind, Exception)):
            kind = RuntimeError
        exc = kind(f"{what}: rank {rank} of {len(reports)}: {message}")
        if error is not None:
            raise exc from error
        raise exc
    if value is not None and top[1] != -top[2]:
        raise ValueError(f"{what}: the ranks disagree on {about}; every rank must use the "
                         "same ones")


def checked(fn, *args):
    """(result, None) of ``fn(*args)``, or (None, the exception it raised):
    any exception, so that ``agree`` hears of it on every rank."""
    try:
        return fn(*args), None
    except Exception as exc:  # noqa: BLE001 - every rank must hear of it, whatever it is
        return None, exc
