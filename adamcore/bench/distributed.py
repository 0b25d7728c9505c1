"""``python -m adamcore.bench --distributed``: the sharded step
(adamcore.distributed) at 1, 2 and 4 ranks, against torch's
``ZeroRedundancyOptimizer`` over gloo, side by side in one run.

The driver launches each case under ``mpiexec`` (this module's ``--worker``
mode; torch's ranks take their rank and size from MPI and meet over gloo's
TCP store on localhost). A model of N float32 elements in 64 tensors of N/64
(ZeRO partitions whole tensors, so one tensor would not be sharded at all);
every rank has fixed random grads; Adam, lr 1e-3. Per sample: a barrier, one
step, and the slowest rank's time. adamcore's step splits into the reduce
(Alltoallv rounds), the ordered sum, the kernel on the shard, and the
Allgather of params (stage 1 also gathers the reduced grads); torch's into
DDP's part, one ``all_reduce`` of the flat grad buffer divided by P, and
``ZeroRedundancyOptimizer.step`` (its local fused Adam and the parameter
broadcast, which it does not split). Bytes sent per rank are what adamcore
hands MPI for other ranks, against the 2(P-1)/P x N x 4 of a
bandwidth-optimal reduce-scatter plus allgather. Ranks share this machine's
cores: each gets ``cores // P`` OpenMP threads (at least 1), so P above the
core count oversubscribes and measures contention, not a cluster.
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time

import numpy as np

SIZES = (2 ** 22, 2 ** 24)
RANKS = (1, 2, 4)
TENSORS = 64
IMPLS = {
    "adamcore-stage2": "adamcore.distributed.ShardedOptimizer(Adam, stage=2)",
    "adamcore-stage1": "adamcore.distributed.ShardedOptimizer(Adam, stage=1)",
    "torch-zero": "torch.distributed.optim.ZeroRedundancyOptimizer(Adam, fused=True) over "
                  "gloo, after an all_reduce of the flat grads",
}
PARTS = ("step", "reduce", "sum", "kernel", "gather")


# ---- one case, on every rank (under mpiexec) --------------------------------------

def _adamcore_case(comm, spec, threads):
    import adamcore
    from adamcore.distributed import ShardedOptimizer

    n = spec["n"]
    fp = adamcore.FlatParams([(n // TENSORS,)] * TENSORS)
    fp.flat[...] = np.random.default_rng(0).standard_normal(n)
    fp.flat_grad[...] = np.random.default_rng(comm.Get_rank() + 1).standard_normal(n)
    opt = ShardedOptimizer(adamcore.Adam, fp, comm, stage=int(spec["impl"][-1]), lr=1e-3,
                           n_threads=threads)

    def step():
        opt.stats.reset()
        opt.step()
        s = opt.stats
        return {"reduce": s.reduce_seconds, "sum": s.sum_seconds, "kernel": s.kernel_seconds,
                "gather": s.gather_seconds, "bytes_sent": s.bytes_sent}

    return step, lambda: opt.state_bytes


def _torch_case(comm, spec, threads):
    import torch
    import torch.distributed as dist
    from torch.distributed.optim import ZeroRedundancyOptimizer

    torch.set_num_threads(threads)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{spec['port']}",
                            rank=comm.Get_rank(), world_size=comm.Get_size())
    n, size = spec["n"], comm.Get_size()
    flat = torch.from_numpy(np.random.default_rng(0).standard_normal(n).astype(np.float32))
    params = [torch.nn.Parameter(t.clone()) for t in flat.chunk(TENSORS)]
    grad = torch.from_numpy(
        np.random.default_rng(comm.Get_rank() + 1).standard_normal(n).astype(np.float32))
    for p, g in zip(params, grad.chunk(TENSORS)):  # views into one buffer, as DDP's buckets
        p.grad = g
    opt = ZeroRedundancyOptimizer(params, optimizer_class=torch.optim.Adam,
                                  parameters_as_bucket_view=True, lr=1e-3, fused=True)

    def step():
        t0 = time.perf_counter()
        if size > 1:
            dist.all_reduce(grad)
            grad.div_(size)
        t1 = time.perf_counter()
        opt.step()
        return {"reduce": t1 - t0, "kernel": time.perf_counter() - t1}

    def state_bytes():
        return sum(t.nbytes for st in opt.optim.state.values() for t in st.values()
                   if torch.is_tensor(t) and t.dim() > 0)

    return step, state_bytes


def worker(spec):
    """Time one case on every rank; rank 0 prints one RESULT line of JSON."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    threads = max(1, (os.cpu_count() or 1) // comm.Get_size())
    make = _torch_case if spec["impl"] == "torch-zero" else _adamcore_case
    step, state_bytes = make(comm, spec, threads)
    for _ in range(3):  # warm-up: first-touch page faults, thread pools, connections
        step()
    samples = []
    for _ in range(spec["repeats"]):
        comm.Barrier()
        t0 = time.perf_counter()
        parts = step()
        parts["step"] = time.perf_counter() - t0
        samples.append({k: comm.allreduce(v, op=MPI.MAX) for k, v in sorted(parts.items())})
    result = {k: statistics.median(s[k] for s in samples) for k in samples[0]}
    result["state_bytes"] = comm.allreduce(state_bytes(), op=MPI.MAX)
    result["threads"] = threads
    if comm.Get_rank() == 0:
        print("RESULT " + json.dumps(result), flush=True)


# ---- the driver --------------------------------------------------------------------

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def available():
    """(mpiexec path or None, whether torch is importable, a reason if not runnable)."""
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable) + os.pathsep
                           + os.environ.get("PATH", ""))
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return None, False, "mpi4py is not installed: pip install 'adamcore[mpi]'"
    try:
        import torch  # noqa: F401
        has_torch = True
    except ImportError:
        has_torch = False
    if mpiexec is None:
        return None, has_torch, "no mpiexec found: pip install 'adamcore[mpi]'"
    return mpiexec, has_torch, None


def launch(mpiexec, n_ranks, spec, timeout=900):
    cmd = [mpiexec, "-n", str(n_ranks), sys.executable, "-m", "adamcore.bench.distributed",
           "--worker", json.dumps(spec)]
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // n_ranks))}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    for line in out.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"{spec['impl']} at {n_ranks} ranks failed:\n{out.stderr[-3000:]}")


def measure(sizes=SIZES, ranks=RANKS, repeats=11, impls=tuple(IMPLS), progress=None):
    """Every (impl, n, P) case as a dict of medians. Each case is its own
    launch, so its samples cannot interleave with another's: cases of one
    (n, P) run back to back, so drift between them stays small."""
    mpiexec, has_torch, reason = available()
    if reason:
        raise RuntimeError(reason)
    rows = []
    for n in sizes:
        for p in ranks:
            for impl in impls:
                if impl == "torch-zero" and not has_torch:
                    continue
                if impl == "adamcore-stage1" and p == 1:
                    continue  # one rank: the stages are the same step
                if progress:
                    progress(f"{impl} n=2^{n.bit_length() - 1} P={p}")
                spec = {"impl": impl, "n": n, "repeats": repeats, "port": _free_port()}
                result = launch(mpiexec, p, spec)
                ideal = 2 * (p - 1) * n * 4 // p
                rows.append({"impl": impl, "n": n, "ranks": p, **result,
                             "ideal_bytes": ideal, "single_state_bytes": 2 * n * 4})
    return rows


def table(rows):
    """The markdown table of ``measure``'s rows, with ratios to torch."""
    torch_step = {(r["n"], r["ranks"]): r["step"] for r in rows if r["impl"] == "torch-zero"}
    lines = ["| N | P | threads/rank | impl | step ms | reduce ms | sum ms | kernel ms | "
             "gather ms | bytes sent/rank | 2(P-1)/P·N·4 | state bytes/rank | torch/this |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        def ms(key):
            return f"{r[key] * 1e3:.2f}" if key in r else "—"
        peer = torch_step.get((r["n"], r["ranks"]))
        ratio = f"{peer / r['step']:.2f}" if peer and r["impl"] != "torch-zero" else ""
        sent = f"{r['bytes_sent']:,}" if "bytes_sent" in r else "—"
        lines.append(f"| 2^{r['n'].bit_length() - 1} | {r['ranks']} | {r['threads']} | "
                     f"{r['impl']} | {ms('step')} | {ms('reduce')} | {ms('sum')} | "
                     f"{ms('kernel')} | {ms('gather')} | {sent} | {r['ideal_bytes']:,} | "
                     f"{r['state_bytes']:,} | {ratio} |")
    return "\n".join(lines)


def main(args):
    """The --distributed mode of python -m adamcore.bench."""
    rows = measure(repeats=args.repeats,
                   progress=lambda label: sys.stderr.write(f"\r{label:<50}"))
    sys.stderr.write("\n")
    args.out.mkdir(parents=True, exist_ok=True)
    text = table(rows)
    (args.out / "distributed.json").write_text(json.dumps(
        {"impls": IMPLS, "rows": rows}, indent=1))
    (args.out / "distributed.md").write_text(
        "# adamcore.distributed against torch ZeroRedundancyOptimizer\n\n"
        + __doc__.split("\n\n", 1)[1] + "\n\n" + text + "\n")
    print(text)
    print(f"\nwritten: {args.out / 'distributed.md'}, {args.out / 'distributed.json'}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m adamcore.bench.distributed")
    parser.add_argument("--worker", required=True, help="one case's JSON (the driver's)")
    worker(json.loads(parser.parse_args().worker))
