"""Agreement across ranks before anything is changed.

A check that fails on one rank only must fail on every rank, with the same
error, before the first exchange: otherwise the other ranks would wait in a
collective the failing rank never enters (a hang), or step while it does
not (state that no longer matches). ``agree`` costs one small Allreduce
when every rank passed, and a gather of the messages only when one did not.
"""

import builtins

import numpy as np

# Errors that keep their type on every rank; any other is a RuntimeError.
_KEPT = (TypeError, ValueError, OSError)


def agree(mpi, comm, error, what):
    """Raise on every rank if ``error`` (this rank's exception, or None) is
    set on any rank: the first failing rank's error, of its type where that
    is a TypeError, ValueError or OSError (else a RuntimeError), its message
    prefixed by ``what`` and its rank. Collective: every rank calls it at the same point."""
    flag = np.array([0 if error is None else 1], np.int32)
    total = np.zeros(1, np.int32)
    comm.Allreduce(flag, total, op=mpi.SUM)
    if not total[0]:
        return
    mine = None if error is None else (type(error).__name__, str(error))
    reports = comm.allgather(mine)
    rank, (name, message) = next((r, rep) for r, rep in enumerate(reports) if rep is not None)
    kind = getattr(builtins, name, None)
    if not (isinstance(kind, type) and issubclass(kind, _KEPT)):
        kind = RuntimeError
    exc = kind(f"{what}: rank {rank} of {len(reports)}: {message}")
    if error is not None:
        raise exc from error
    raise exc


def checked(fn, *args):
    """(result, None) of ``fn(*args)``, or (None, the TypeError or ValueError it raised)."""
    try:
        return fn(*args), None
    except (TypeError, ValueError) as exc:
        return None, exc
