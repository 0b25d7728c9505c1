"""The speed targets (issue 3), evaluated on one run's rows.

A row is a dict with dtype, n, threads, impl, n_tensors and ns (median per
step). Each target reports its worst measured ratio over the sizes it covers;
nothing here asserts: a missed target is reported, not raised.
"""

SMALL, CACHE, LARGE = (0, 2 ** 12), (2 ** 14, 2 ** 20), (2 ** 22, 2 ** 62)


def _ns(rows, **key):
    for r in rows:
        if all(r.get(k) == v for k, v in key.items()):
            return r["ns"]
    return None


def _ratios(rows, dtype, sizes, threads, num, den, n_tensors=1):
    """num_ns / den_ns for each measured size in [lo, hi] and thread count."""
    out = []
    for r in rows:
        if (r["impl"] == den and r["dtype"] == dtype and r["n_tensors"] == n_tensors
                and sizes[0] <= r["n"] <= sizes[1] and r["threads"] in threads):
            a = _ns(rows, impl=num, dtype=dtype, n=r["n"], threads=r["threads"],
                    n_tensors=n_tensors)
            if a is not None:
                out.append(a / r["ns"])
    return out


def _vs_one_tensor(rows, impl):
    """impl's time on 1000 tensors over c-adam's on one tensor of the same size."""
    out = []
    for r in rows:
        if r["impl"] == impl and r["n_tensors"] == 1000:
            single = _ns(rows, impl="c-adam", dtype=r["dtype"], n=r["n"],
                         threads=r["threads"], n_tensors=1)
            if single:
                out.append(r["ns"] / single)
    return out


def evaluate(rows, roofline, all_threads, memory=None):
    """[(target, measured, goal, holds)] for every target the rows cover."""
    both = (1, all_threads)
    results = []

    def add(name, values, goal, higher_is_better=True):
        if values:
            worst = min(values) if higher_is_better else max(values)
            holds = worst >= goal if higher_is_better else worst <= goal
            results.append((name, worst, goal, holds))

    frac = []
    for r in rows:
        if (r["impl"] == "c-adam" and r["dtype"] == "float32" and r["n_tensors"] == 1
                and r["n"] >= LARGE[0] and r["threads"] in roofline):
            frac.append(28 * r["n"] / r["ns"] / roofline[r["threads"]])
    add(">= 2^22: fraction of the measured memory bound (float32, 1 and all threads)",
        frac, 0.95)
    add("2^14..2^20: speedup over torch fused (float32, 1 and all threads)",
        _ratios(rows, "float32", CACHE, both, "torch-fused", "c-adam"), 2.2)
    # What this machine allows: no step moving Adam's bytes beats the probe.
    add("2^14..2^20: ceiling, torch fused vs the stream probe at that size (float32)",
        _ratios(rows, "float32", CACHE, both, "torch-fused", "probe"), 2.2)
    add("<= 2^12 through Adam.step: speedup over torch fused (float32)",
        _ratios(rows, "float32", SMALL, both, "torch-fused", "c-adam"), 15.0)
    f = _ns(rows, impl="c-functional", dtype="float32", n=16, threads=1, n_tensors=1)
    o = _ns(rows, impl="c-adam", dtype="float32", n=16, threads=1, n_tensors=1)
    add("16-element step through functional.adam_step, us", [f / 1e3] if f else [], 1.0,
        higher_is_better=False)
    add("16-element step through Adam.step, us", [o / 1e3] if o else [], 2.0,
        higher_is_better=False)
    many = _ratios(rows, "float32", (0, 2 ** 62), both, "torch-fused", "c-adam", 1000)
    many += _ratios(rows, "float32", (0, 2 ** 62), both, "torch-foreach", "c-adam", 1000)
    add("1000 x 1024 tensors: speedup over torch fused and foreach", many, 10.0)
    add("1000 x 1024 tensors: time vs the same elements as one tensor",
        _vs_one_tensor(rows, "c-adam"), 1.5, higher_is_better=False)
    add("1000 x 1024 tensors in one FlatParams: time vs one tensor",
        _vs_one_tensor(rows, "c-flat"), 1.5, higher_is_better=False)
    for impl, what in (("c-adam-frozen", "one param frozen"),
                       ("c-adam-skipped-once", "one param skipped once")):
        ratios, shape = [], ""
        for r in rows:
            if r["impl"] == impl:
                every = _ns(rows, impl="c-adam", dtype=r["dtype"], n=r["n"],
                            threads=r["threads"], n_tensors=r["n_tensors"])
                if every:
                    ratios.append(r["ns"] / every)
                    shape = f"{r['n_tensors']} x {r['n'] // r['n_tensors']}"
        add(f"{shape} tensors, {what}: time vs every grad present", ratios, 1.2,
            higher_is_better=False)
    # The torch adapter (adamcore.torch.Adam) on the same torch tensors as its
    # peers: never slower than the strongest of them (issue 15).
    add("<= 2^20 through adamcore.torch.Adam: speedup over torch fused (float32)",
        _ratios(rows, "float32", (0, CACHE[1]), both, "torch-fused", "torch-adamcore"), 1.0)
    add("<= 2^20 through adamcore.torch.Adam: speedup over DeepSpeed CPU Adam (float32)",
        _ratios(rows, "float32", (0, CACHE[1]), both, "deepspeed-cpu", "torch-adamcore"), 1.0)
    add("1000 x 1024 tensors through adamcore.torch.Adam: speedup over torch fused",
        _ratios(rows, "float32", (0, 2 ** 62), both, "torch-fused", "torch-adamcore", 1000), 1.0)
    add("float64 >= 2^22: speedup over torch fused",
        _ratios(rows, "float64", LARGE, both, "torch-fused", "c-adam"), 1.05)
    add("float64 2^14..2^18: speedup over torch fused",
        _ratios(rows, "float64", (2 ** 14, 2 ** 18), both, "torch-fused", "c-adam"), 2.0)
    scaling = []
    for r in rows:
        if (r["impl"] == "c-adam" and r["threads"] == 1 and r["dtype"] == "float32"
                and r["n_tensors"] == 1 and 2 ** 16 <= r["n"] <= 2 ** 20 and all_threads > 1):
            t = _ns(rows, impl="c-adam", dtype="float32", n=r["n"], threads=all_threads,
                    n_tensors=1)
            if t:
                scaling.append(r["ns"] / t)
    add(f"2^16..2^20: {all_threads} threads vs 1 (float32)", scaling, 1.6)
    if memory:
        add("bytes allocated per step after the first", [memory["bytes_per_step"]], 0,
            higher_is_better=False)
        # 2x (3x) the param's bytes, plus at most 63 B per array placing it at
        # the param's offset mod 64.
        add("state bytes beyond 2x param bytes (Adam; alignment slack)",
            [memory["state_slack_bytes"]], 2 * 63, higher_is_better=False)
        add("state bytes beyond 3x param bytes (AMSGrad; alignment slack)",
            [memory["state_slack_bytes_amsgrad"]], 3 * 63, higher_is_better=False)
    return results
