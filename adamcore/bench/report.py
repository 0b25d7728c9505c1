"""Tables, results.json, results.md and the plot of one benchmark run."""

import json

from adamcore.bench import rows as row_bench
from adamcore.bench.cases import IMPLS, LABELS, bytes_per_element

ORDER = list(IMPLS)


def _fmt_ns(ns):
    return f"{ns / 1e3:.1f} us" if ns < 1e6 else f"{ns / 1e6:.2f} ms"


def enrich(rows, roofline):
    """Add ns/element, GB/s, speedups and % of the memory bound to each row."""
    index = {(r["dtype"], r["n"], r["threads"], r["n_tensors"], r["impl"]): r for r in rows}
    for r in rows:
        key = (r["dtype"], r["n"], r["threads"], r["n_tensors"])
        r["ns_per_element"] = r["ns"] / r["n"]
        r["gb_per_s"] = bytes_per_element(r["dtype"]) * r["n"] / r["ns"]
        textbook = index.get((r["dtype"], r["n"], 1, r["n_tensors"], "textbook"))
        fused = index.get(key + ("torch-fused",))
        r["vs_textbook"] = textbook["ns"] / r["ns"] if textbook else None
        r["vs_torch_fused"] = fused["ns"] / r["ns"] if fused else None
        bound = roofline.get(r["threads"])
        r["roofline_pct"] = (100 * r["gb_per_s"] / bound
                             if bound and r["n"] >= 2 ** 22 and r["dtype"] == "float32" else None)
    return rows


def _cell(value, fmt):
    return "" if value is None else format(value, fmt)


def main_table(rows):
    """Markdown rows: one per (dtype, size, threads, tensors, impl)."""
    head = ("| dtype | elements | tensors | threads | implementation | time | ns/element | "
            "GB/s | x textbook | x torch fused | % of bound |")
    lines = [head, "|" + "---|" * 11]
    key = lambda r: (r["dtype"], r["n_tensors"], r["n"], r["threads"], ORDER.index(r["impl"]))
    for r in sorted(rows, key=key):
        lines.append(
            f"| {r['dtype']} | {r['n']} | {r['n_tensors']} | {r['threads']} | {r['impl']} | "
            f"{_fmt_ns(r['ns'])} | {r['ns_per_element']:.3f} | {r['gb_per_s']:.1f} | "
            f"{_cell(r['vs_textbook'], '.1f')} | {_cell(r['vs_torch_fused'], '.2f')} | "
            f"{_cell(r['roofline_pct'], '.0f')} |")
    return lines


def summary_table(rows, dtype, threads, sizes):
    """adamcore.Adam against the others at each size: ns/element, and its speedups."""
    impls = [i for i in ORDER if any(r["impl"] == i and r["dtype"] == dtype
                                     and r["n_tensors"] == 1 for r in rows)]
    head = "| elements | " + " | ".join(impls) + " | Adam vs torch fused | % of bound |"
    lines = [head, "|" + "---|" * (len(impls) + 3)]
    for n in sizes:
        cells, adam = [], None
        for impl in impls:
            t = threads if impl not in ("textbook", "numpy") else 1
            r = next((r for r in rows if (r["dtype"], r["n"], r["threads"], r["n_tensors"],
                                          r["impl"]) == (dtype, n, t, 1, impl)), None)
            cells.append(f"{r['ns_per_element']:.3f}" if r else "")
            adam = r if impl == "c-adam" else adam
        lines.append(f"| 2^{n.bit_length() - 1} | " + " | ".join(cells) + " | "
                     f"{_cell(adam and adam['vs_torch_fused'], '.2f')} | "
                     f"{_cell(adam and adam['roofline_pct'], '.0f')} |")
    return lines


def targets_table(targets):
    lines = ["| target | measured (worst) | goal | holds |", "|---|---|---|---|"]
    for name, value, goal, holds in targets:
        lines.append(f"| {name} | {value:.3g} | {goal:g} | {'yes' if holds else 'NO'} |")
    return lines


def write(out_dir, meta, rows, roofline, memory, targets, all_threads, sizes, row_grads=()):
    with open(out_dir / "results.json", "w") as f:
        json.dump({"meta": meta, "roofline_gb_per_s": roofline, "memory": memory,
                   "targets": [dict(target=t[0], measured=t[1], goal=t[2], holds=t[3])
                               for t in targets], "rows": rows,
                   "row_gradients": list(row_grads)}, f, indent=1)
    md = [f"# adamcore benchmark, {meta['date']}", "",
          f"`{meta['command']}` on {meta['machine']}.", "",
          "Median time per step; a float32 step moves 28 bytes per element, float64 56. "
          "ns/element columns below; `x` columns are speedups of that row.", "",
          "Memory bound (stream probe, 4 arrays read + 3 written, same pattern as a step): "
          + ", ".join(f"{t} thread{'s' * (t > 1)}: {bw:.1f} GB/s" for t, bw in roofline.items()),
          ""]
    if meta.get("not_measured"):
        md += ["Not measured, not installed: " + ", ".join(meta["not_measured"]) + ".", ""]
    for dtype in ("float32", "float64"):
        for t in sorted({1, all_threads}):
            if any(r["dtype"] == dtype for r in rows):
                md += [f"## {dtype}, {t} thread{'s' * (t > 1)}: ns per element", ""]
                md += summary_table(rows, dtype, t, sizes) + [""]
    if row_grads:
        md += ["## Row gradients: a 1,000,000 x 64 float32 embedding table, ms per step", "",
               row_bench.__doc__.split("\n\n")[1].replace("\n", " "), ""]
        md += row_bench.table_lines(row_grads) + [""]
    if memory:
        md += ["## Memory", "", "```", json.dumps(memory, indent=1), "```", ""]
    md += ["## Targets", ""] + targets_table(targets) + [""]
    md += ["## Every measurement", ""] + main_table(rows) + [""]
    (out_dir / "results.md").write_text("\n".join(md))


def plot(path, rows, roofline, all_threads, sizes):
    """Per dtype and thread count, ns/element against size (the size sweep
    ``sizes`` only: one tensor each), log-log, with the memory bound; and a
    panel of the many-tensor case (same elements as one tensor, in many
    tensors, in one FlatParams, torch's). Returns False without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    dtypes = [d for d in ("float32", "float64") if any(r["dtype"] == d for r in rows)]
    threads = sorted({1, all_threads})
    many = [r for r in rows if r["n_tensors"] > 1 and r["impl"] in _MANY_PANEL]
    cols = len(threads) + bool(many)
    fig, axes = plt.subplots(len(dtypes), cols, figsize=(6 * cols, 4.5 * len(dtypes)),
                             squeeze=False)
    for i, dtype in enumerate(dtypes):
        for j, t in enumerate(threads):
            ax = axes[i][j]
            for impl in ORDER:
                pts = sorted((r["n"], r["ns_per_element"]) for r in rows
                             if r["impl"] == impl and r["dtype"] == dtype and r["n_tensors"] == 1
                             and r["n"] in sizes
                             and r["threads"] == (1 if impl in ("textbook", "numpy") else t))
                if pts:
                    ax.plot(*zip(*pts), marker="o", ms=3, label=LABELS[impl])
            if t in roofline:
                bound = bytes_per_element(dtype) / roofline[t]
                ax.axhline(bound, color="k", ls="--", lw=1, label="memory bound")
            ax.set(xscale="log", yscale="log", xlabel="elements (one tensor)",
                   ylabel="ns per element", title=f"{dtype}, {t} thread{'s' * (t > 1)}")
            ax.grid(True, which="both", alpha=0.3)
            ax.legend(fontsize=7)
        if many and i == 0:
            _many_panel(axes[0][-1], rows, many, threads)
        elif many:
            axes[i][-1].axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


_MANY_PANEL = ("c-adam", "c-flat", "torch-fused", "torch-foreach", "torch-adamcore")


def _many_panel(ax, rows, many, threads):
    """Bars: time per step of the many-tensor case, per implementation and
    thread count, beside one tensor of the same elements."""
    count, n = many[0]["n_tensors"], many[0]["n"]
    series = [("one tensor: " + LABELS["c-adam"], "c-adam", 1)]
    series += [(f"{count} tensors: {LABELS[i]}", i, count) for i in _MANY_PANEL
               if any(r["impl"] == i for r in many)]
    width = 0.8 / len(threads)
    for k, t in enumerate(threads):
        ms = []
        for _, impl, tensors in series:
            r = next((r for r in rows if (r["impl"], r["n"], r["n_tensors"], r["threads"],
                                          r["dtype"]) == (impl, n, tensors, t, "float32")), None)
            ms.append(r["ns"] / 1e6 if r else 0.0)
        ax.barh([y + k * width for y in range(len(series))], ms, height=width,
                label=f"{t} thread{'s' * (t > 1)}")
    ax.set_yticks([y + width * (len(threads) - 1) / 2 for y in range(len(series))])
    ax.set_yticklabels([s[0] for s in series], fontsize=7)
    ax.invert_yaxis()
    ax.set(xscale="log", xlabel="ms per step",
           title=f"float32, {count} tensors x {n // count} elements")
    ax.grid(True, axis="x", which="both", alpha=0.3)
    ax.legend(fontsize=7)
