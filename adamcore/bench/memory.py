"""Memory of a step: what the state costs, and what each step allocates.

- State: bytes of the buffers that own the state arrays, against the param's
  bytes. Each array costs its own bytes plus at most 63 bytes, spent on
  placing it at the param's offset mod 64.
- Per step: growth of tracemalloc's traced memory (which sees NumPy's
  allocations) per step between ``steps`` and ``2 * steps`` steps after 300
  warm-up steps, so one-offs (a step count past 256 is a new Python int)
  don't count; must be 0. And the peak
  above the starting point: temporaries such as Python lists and the
  binding's pointer table, never an array of the param's size.
"""

import tracemalloc

import numpy as np

import adamcore


def _owner(a):
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def measure(n=2 ** 16, steps=500, impl="c"):
    rng = np.random.default_rng(0)
    out = {"elements": n, "param_bytes": 4 * n}
    for amsgrad in (False, True):
        p = rng.standard_normal(n).astype(np.float32)
        grads = [rng.standard_normal(n).astype(np.float32)]
        opt = adamcore.Adam([p], lr=1e-6, amsgrad=amsgrad, impl=impl)
        for _ in range(300):
            opt.step(grads)
        arrays = [v for v in opt.state[0].values() if isinstance(v, np.ndarray)]
        state_bytes = sum(_owner(a).nbytes for a in arrays)
        key = "_amsgrad" if amsgrad else ""
        out["state_ratio" + key] = state_bytes / p.nbytes
        out["state_slack_bytes" + key] = state_bytes - len(arrays) * p.nbytes
        if amsgrad:
            continue
        tracemalloc.start()
        try:
            start = tracemalloc.get_traced_memory()[0]
            for _ in range(steps):
                opt.step(grads)
            middle = tracemalloc.get_traced_memory()[0]
            for _ in range(steps):
                opt.step(grads)
            end, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        out["bytes_per_step"] = (end - middle) / steps
        out["peak_temporary_bytes"] = peak - start
    return out
