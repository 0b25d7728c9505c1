"""``python -m adamcore.bench``: adamcore against textbook NumPy and torch.optim.

Quick by default (float32, six sizes); ``--full`` sweeps float32 and float64
over 2^4..2^24. Every case is timed side by side in this one run: medians of
repeated samples after a warm-up. Also measures this machine's memory bound
(a stream probe with the step's access pattern), 1000 small tensors against
one large one, the per-call cost of a 16-element step, memory per step, and
row gradients of a 1M x 64 embedding table (adamcore.bench.rows).
``--distributed`` runs only adamcore.distributed's sharded step under
mpiexec at 1, 2 and 4 ranks, against torch's ZeroRedundancyOptimizer
(adamcore.bench.distributed).
Prints a summary and the targets, and writes results.json, results.md and
results.png (with matplotlib installed) into ``--out``.
"""

import argparse
import datetime
import pathlib
import platform
import sys

import numpy as np

import adamcore
from adamcore.bench import memory, report, roofline, targets
from adamcore.bench import distributed as dist_bench
from adamcore.bench import rows as row_bench
from adamcore.bench import state as state_bench
from adamcore.bench.cases import (IMPLS, INSTALL, MANY_TENSORS_ONLY, SINGLE_THREADED,
                                  TORCH_THREADED, Case, available, torch)
from adamcore.bench.timing import interleaved

QUICK_SIZES = [2 ** k for k in (4, 10, 14, 18, 20, 22)]
FULL_SIZES = [2 ** k for k in (4, 10, 12, 14, 16, 18, 20, 22, 24)]
MANY = (1000, 1024)  # tensors x elements
SKIPS = (1000, 16)   # tensors x elements: a step's fixed costs, with skipped params


def plan(dtypes, sizes, all_threads):
    """(impl, dtype, n, threads, n_tensors) for every case of the run."""
    threads = sorted({1, all_threads})
    cases = []
    for dtype in dtypes:
        for n in sizes:
            for t in threads:
                for impl in IMPLS:
                    if (available(impl) and impl not in MANY_TENSORS_ONLY
                            and not (impl in SINGLE_THREADED and t > 1)):
                        cases.append((impl, dtype, n, t, 1))
    count, size = MANY
    for t in threads:
        cases.append(("c-adam", "float32", count * size, t, 1))
        for impl in ("c-adam", "c-flat", "torch-fused", "torch-foreach", "torch-adamcore"):
            if available(impl):
                cases.append((impl, "float32", count * size, t, count))
    count, size = SKIPS
    for impl in ("c-adam", "c-adam-frozen", "c-adam-skipped-once"):
        cases.append((impl, "float32", count * size, 1, count))
    return cases


def groups(cases):
    """Cases of one (dtype, n, n_tensors), all implementations and thread
    counts, timed together (see adamcore.bench.timing.interleaved)."""
    out = {}
    for impl, dtype, n, t, n_tensors in cases:
        out.setdefault((dtype, n, n_tensors), []).append((impl, t))
    return out.items()


def progress(i, total, label):
    width = 30
    done = width * i // max(total, 1)
    sys.stderr.write(f"\r[{'#' * done}{'.' * (width - done)}] {i}/{total} {label:<40}")
    sys.stderr.flush()


def machine():
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f
                         if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    info = adamcore.build_info()
    return (f"{model}, {info['max_threads']} OpenMP threads, SIMD {info['simd_in_use']}, "
            f"Python {platform.python_version()}, NumPy {np.__version__}"
            + (f", torch {torch.__version__}" if torch is not None else ", no torch"))


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m adamcore.bench",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true", help="both dtypes, sizes 2^4..2^24")
    parser.add_argument("--repeats", type=int, default=7, help="timing samples per case")
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("."),
                        help="folder for results.json, results.md, results.png")
    parser.add_argument("--rows", choices=("yes", "no", "only"), default="yes",
                        help="the row-gradient (embedding table) cases: with the rest, "
                             "left out, or alone")
    parser.add_argument("--state", choices=("yes", "no", "only"), default="yes",
                        help="the low-precision state cases (adamcore.bench.state: bfloat16 "
                             "and int8 against float32 state and the peers): with the rest, "
                             "left out, or alone")
    parser.add_argument("--distributed", action="store_true",
                        help="instead: adamcore.distributed at 1, 2, 4 ranks against torch's "
                             "ZeroRedundancyOptimizer (needs adamcore[mpi]; see "
                             "adamcore.bench.distributed)")
    args = parser.parse_args(argv)
    if args.distributed:
        return dist_bench.main(args)
    info = adamcore.build_info()
    if not info["extension"]:
        sys.exit(f"adamcore's compiled kernel is not available: {info['extension_error']}")
    all_threads = info["max_threads"]
    if args.state == "only":
        return state_bench.run(args, all_threads)
    dtypes = ["float32", "float64"] if args.full else ["float32"]
    sizes = FULL_SIZES if args.full else QUICK_SIZES
    cases = plan(dtypes, sizes, all_threads) if args.rows != "only" else []

    sys.stderr.write("measuring the memory bound...\n")
    bound = roofline.measure(sorted({1, all_threads}))
    rows, done = [], 0
    for key, group in groups(cases):
        dtype, n, n_tensors = key
        progress(done, len(cases), f"{dtype} n={n} x{n_tensors}")
        built = [Case(impl, dtype, n, t, n_tensors) for impl, t in group]

        def timed(case):
            def step():  # torch's thread count is process-wide: set per sample
                case.enter()
                case.step()
            return step if case.impl in TORCH_THREADED else case.step

        times = interleaved([timed(c) for c in built], repeats=args.repeats)
        for (impl, t), ns in zip(group, times):
            rows.append(dict(impl=impl, dtype=dtype, n=n, threads=t, n_tensors=n_tensors, ns=ns))
        done += len(group)
        del built
    progress(len(cases), len(cases), "done")
    sys.stderr.write("\n")
    row_rows = []
    if args.rows != "no":
        row_rows = row_bench.measure(all_threads, repeats=args.repeats,
                                     progress=lambda label: progress(0, 1, label))
        sys.stderr.write("\n")
    mem = memory.measure() if cases else None
    report.enrich(rows, bound)
    met = targets.evaluate(rows, bound, all_threads, mem) + row_bench.targets(row_rows)

    skipped = [f"{impl} ({INSTALL.get(impl, 'the compiled kernel')})"
               for impl in IMPLS if not available(impl)]
    meta = dict(date=datetime.date.today().isoformat(), machine=machine(),
                command="python -m adamcore.bench" + (" --full" if args.full else "")
                + (f" --rows {args.rows}" if args.rows != "yes" else ""),
                adamcore=adamcore.__version__, build=info, not_measured=skipped)
    args.out.mkdir(parents=True, exist_ok=True)
    report.write(args.out, meta, rows, bound, mem, met, all_threads, sizes, row_rows)
    plotted = bool(rows) and report.plot(args.out / "results.png", rows, bound, all_threads,
                                         sizes)

    print(f"{meta['command']} on {meta['machine']}, {meta['date']}")
    print("memory bound: " + ", ".join(f"{t}t {bw:.1f} GB/s" for t, bw in bound.items()))
    for dtype in dtypes if rows else ():
        for t in sorted({1, all_threads}):
            print(f"\n{dtype}, {t} thread(s), ns per element:")
            print("\n".join(report.summary_table(rows, dtype, t, sizes)))
    if row_rows:
        print("\nrow gradients, 1,000,000 x 64 float32 table, ms per step:")
        print("\n".join(row_bench.table_lines(row_rows)))
    print("\nTargets:")
    print("\n".join(report.targets_table(met)))
    if skipped:
        print("\nnot measured, not installed: " + ", ".join(skipped))
    print("\nnot run here: the sharded step over MPI against torch's ZeroRedundancyOptimizer "
          "(python -m adamcore.bench --distributed, with pip install 'adamcore[mpi]')")
    written = ["results.json", "results.md"] + (["results.png"] if plotted else [])
    print(f"\nwrote {', '.join(str(args.out / w) for w in written)}"
          + ("" if plotted or not rows else " (pip install matplotlib for the plot)"))
    if args.state == "yes":
        print("\nlow-precision state (state_dtype), float32 params:")
        state_bench.run(args, all_threads)


if __name__ == "__main__":
    main()
