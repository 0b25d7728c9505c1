"""Adam's state in fewer bytes (``state_dtype``): the benchmark.

Side by side, interleaved (adamcore.bench.timing), float32 params of one
tensor at 2^14..2^20 (in cache) and 2^22, 2^24 (in memory), 1 and all
threads: adamcore.Adam with float32, bfloat16 and int8 state, torch's
fused Adam, DeepSpeed's CPU Adam and bitsandbytes' Adam8bit (the last
three optional peers: what is not installed is listed as skipped, with how
to install it). ``speedup`` is adamcore float32 state's time over each
case's, and ``vs best peer`` the fastest float32-state peer's (torch
fused, DeepSpeed) over each case's. State bytes are measured with
tracemalloc: what the first step allocates.
"""

import importlib.util
import json
import sys
import tracemalloc

import numpy as np

import adamcore
from adamcore.bench.cases import Case, available as case_available, torch
from adamcore.bench.timing import interleaved

SIZES = [2 ** k for k in (14, 16, 18, 20, 22, 24)]
#: name -> what it is
IMPLS = {
    "c-f32": "adamcore.Adam, float32 state (state_dtype=None)",
    "c-bf16": "adamcore.Adam(state_dtype='bfloat16')",
    "c-int8": "adamcore.Adam(state_dtype='int8')",
    "torch-fused": "torch.optim.Adam(fused=True), float32 state",
    "deepspeed-cpu": "deepspeed.ops.adam.DeepSpeedCPUAdam, float32 state",
    "bnb-adam8bit": "bitsandbytes.optim.Adam8bit (blockwise 8-bit state; its CPU path)",
}
INSTALL = {"torch-fused": "pip install torch==2.13.0", "deepspeed-cpu": "pip install deepspeed",
           "bnb-adam8bit": "pip install bitsandbytes", "c-bf16": "pip install ml_dtypes"}
STATE_DTYPES = {"c-f32": None, "c-bf16": "bfloat16", "c-int8": "int8"}
PEERS = ("torch-fused", "deepspeed-cpu")


def available(impl):
    if impl == "bnb-adam8bit":
        return torch is not None and importlib.util.find_spec("bitsandbytes") is not None
    if impl == "c-bf16":
        return importlib.util.find_spec("ml_dtypes") is not None
    return impl in STATE_DTYPES or case_available(impl)


class StateCase:
    """One implementation stepping one float32 tensor of n elements."""

    def __init__(self, impl, n, threads):
        self.impl, self.threads = impl, threads
        rng = np.random.default_rng(0)
        p = rng.standard_normal(n).astype(np.float32)
        g = rng.standard_normal(n).astype(np.float32)
        self.params = [p]  # what a step updates (torch steps views of it)
        if impl in STATE_DTYPES:
            opt = adamcore.Adam([p], state_dtype=STATE_DTYPES[impl], n_threads=threads)
            self.step = lambda: opt.step([g])
        elif impl == "bnb-adam8bit":
            import bitsandbytes as bnb  # noqa: PLC0415 - optional, slow import
            tp = torch.nn.Parameter(torch.from_numpy(p))
            tp.grad = torch.from_numpy(g)
            opt = bnb.optim.Adam8bit([tp], min_8bit_size=4096)
            self.step = opt.step
        else:
            case = Case(impl, "float32", n, threads)
            self.step, self.params = case.step, case.params
        self.step()

    def timed(self):
        if self.impl in STATE_DTYPES:
            return self.step

        def step():  # torch's thread count is process-wide
            torch.set_num_threads(self.threads)
            self.step()
        return step


def state_bytes(n=2 ** 20):
    """Bytes the first step allocates, per state_dtype (float32 params)."""
    out = {}
    for impl, sd in STATE_DTYPES.items():
        if not available(impl):
            continue
        p, g = np.zeros(n, np.float32), np.ones(n, np.float32)
        opt = adamcore.Adam([p], state_dtype=sd)
        tracemalloc.start()
        opt.step([g])
        size, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        out[impl] = dict(n=n, bytes=size, per_element=size / n)
    return out


def measure(all_threads, repeats=7, progress=None):
    rows = []
    for n in SIZES:
        for t in sorted({1, all_threads}):
            impls = [i for i in IMPLS if available(i)
                     and not (i == "bnb-adam8bit" and t > 1)]  # threads: torch's, unfused ops
            if progress:
                progress(f"state n={n} threads={t}")
            cases = [StateCase(i, n, t) for i in impls]
            times = interleaved([c.timed() for c in cases], repeats=repeats)
            base = dict(zip(impls, times))
            peer = min((base[i] for i in PEERS if i in base), default=None)
            for impl, ns in zip(impls, times):
                rows.append(dict(impl=impl, n=n, threads=t, ns=ns,
                                 speedup=base["c-f32"] / ns,
                                 vs_best_peer=None if peer is None else peer / ns))
            del cases
    return rows


def table(rows):
    lines = ["| n | threads | impl | median us | speedup vs adamcore f32 | vs best f32 peer |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        peer = "" if r["vs_best_peer"] is None else f"{r['vs_best_peer']:.2f}x"
        lines.append(f"| 2^{int(np.log2(r['n']))} | {r['threads']} | {r['impl']} | "
                     f"{r['ns'] / 1e3:.1f} | {r['speedup']:.2f}x | {peer} |")
    return "\n".join(lines)


def run(args, all_threads):
    """The state cases of python -m adamcore.bench: state.md and state.json in --out."""
    rows = measure(all_threads, args.repeats,
                   progress=lambda label: sys.stderr.write(f"\r{label:<50}"))
    sys.stderr.write("\n")
    mem = state_bytes()
    skipped = {i: INSTALL[i] for i in IMPLS if not available(i)}
    info = adamcore.build_info()
    args.out.mkdir(parents=True, exist_ok=True)
    text = table(rows)
    bytes_text = "\n".join(f"- {i}: {m['per_element']:.3f} state bytes per element "
                           f"(n = {m['n']})" for i, m in mem.items())
    skip_text = ("\n\nSkipped (not installed): " + ", ".join(
        f"{i} ({how})" for i, how in skipped.items())) if skipped else ""
    (args.out / "state.json").write_text(json.dumps(
        {"impls": IMPLS, "rows": rows, "state_bytes": mem, "skipped": skipped,
         "simd": info["simd_in_use"]}, indent=1))
    (args.out / "state.md").write_text(
        "# Adam state in fewer bytes\n\n" + __doc__.split("\n\n", 1)[1]
        + f"\nSIMD level: {info['simd_in_use']}.\n\n" + text + "\n\n" + bytes_text
        + skip_text + "\n")
    print(text + "\n\n" + bytes_text + skip_text)
    print(f"\nwritten: {args.out / 'state.md'}, {args.out / 'state.json'}")
