"""The benchmark tooling measures what it says (no timing is asserted)."""

import json

import numpy as np
import pytest

from adamcore.bench import cases, memory, report, roofline, targets, timing
from adamcore.bench import rows as row_bench
from adamcore.bench import state as state_bench
from helpers import requires_kernel

pytestmark = requires_kernel


def row(impl, n, ns, dtype="float32", threads=1, n_tensors=1):
    return dict(impl=impl, dtype=dtype, n=n, threads=threads, n_tensors=n_tensors, ns=ns)


def test_targets_report_worst_ratio_and_whether_it_holds():
    rows = [row("c-adam", 2 ** 14, 10.0), row("torch-fused", 2 ** 14, 40.0),
            row("c-adam", 2 ** 20, 100.0), row("torch-fused", 2 ** 20, 150.0),
            row("c-adam", 2 ** 24, 28 * 2 ** 24 / 50.0)]  # 50 GB/s
    met = {name: (value, holds) for name, value, _, holds in
           targets.evaluate(rows, {1: 52.0}, all_threads=1)}
    cache = next(v for k, v in met.items() if k.startswith("2^14..2^20"))
    assert cache == (1.5, False)  # the worse of 4x and 1.5x, against 2.2
    bound = next(v for k, v in met.items() if "memory bound" in k)
    assert bound[0] == pytest.approx(50 / 52) and bound[1]
    assert not any("float64" in k for k in met)  # no rows, no verdict


def test_enrich_and_report_files(tmp_path):
    rows = [row("textbook", 2 ** 10, 8000.0), row("c-adam", 2 ** 10, 1000.0),
            row("torch-fused", 2 ** 10, 30000.0), row("c-adam", 2 ** 22, 28 * 2 ** 22 / 40.0)]
    report.enrich(rows, {1: 50.0})
    adam = rows[1]
    assert adam["vs_textbook"] == 8.0 and adam["vs_torch_fused"] == 30.0
    assert adam["gb_per_s"] == pytest.approx(28 * 2 ** 10 / 1000.0)
    assert rows[3]["roofline_pct"] == pytest.approx(80.0) and adam["roofline_pct"] is None
    met = targets.evaluate(rows, {1: 50.0}, 1)
    report.write(tmp_path, dict(date="d", machine="m", command="c",
                                not_measured=["deepspeed-cpu (pip install torch deepspeed)"]),
                 rows, {1: 50.0}, None, met, 1, [2 ** 10, 2 ** 22])
    data = json.loads((tmp_path / "results.json").read_text())
    assert len(data["rows"]) == 4 and data["roofline_gb_per_s"] == {"1": 50.0}
    md = (tmp_path / "results.md").read_text()
    assert "| 2^10 | 7.812 |" in md and "## Targets" in md
    assert "Not measured, not installed: deepspeed-cpu (pip install torch deepspeed)." in md


@pytest.mark.parametrize("impl", [i for i in cases.IMPLS if cases.available(i)])
def test_every_case_steps_its_params(impl):
    case = cases.Case(impl, "float32", 64, 1, n_tensors=2)
    before = [p.copy() for p in case.params]
    case.step()
    assert len(before) == 2
    frozen = 1 if impl == "c-adam-frozen" else None  # the middle param, by design
    for k, (a, b) in enumerate(zip(before, case.params)):
        assert np.array_equal(a, b) == (k == frozen), f"param {k}"


def test_interleaved_gives_one_median_per_function():
    calls = [0, 0]

    def a():
        calls[0] += 1

    def b():
        calls[1] += 1
    out = timing.interleaved([a, b], repeats=3, sample_s=0.001, warmup_s=0.001)
    assert len(out) == 2 and all(ns > 0 for ns in out) and min(calls) >= 3


def test_roofline_probe_runs_at_each_thread_count():
    bw = roofline.measure([1, 2], elements=1 << 16, repeats=1)
    assert set(bw) == {1, 2} and all(v > 0 for v in bw.values())


def test_memory_no_allocation_per_step_and_state_is_two_or_three_times_params():
    m = memory.measure(n=4096, steps=50)
    assert m["bytes_per_step"] == 0
    assert 0 <= m["state_slack_bytes"] <= 2 * 63
    assert 0 <= m["state_slack_bytes_amsgrad"] <= 3 * 63
    assert m["peak_temporary_bytes"] < 4096 * 4 / 4  # temporaries, not a param-sized array


def test_command_end_to_end(tmp_path, monkeypatch, capsys):
    from adamcore.bench import __main__ as cli
    small = memory.measure
    monkeypatch.setattr(cli, "QUICK_SIZES", [16, 1024])
    monkeypatch.setattr(cli, "MANY", (4, 256))
    monkeypatch.setattr(cli, "SKIPS", (3, 16))
    monkeypatch.setattr(roofline, "PROBE_ELEMENTS", 1 << 16)
    monkeypatch.setattr(memory, "measure", lambda: small(n=256, steps=5))
    monkeypatch.setattr(row_bench, "TABLE", (3000, 8))  # not 1M x 64: GBs per case
    monkeypatch.setattr(row_bench, "LOOKUPS", (4096,))
    monkeypatch.setattr(state_bench, "SIZES", [1024, 8192])
    cli.main(["--repeats", "1", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    state = json.loads((tmp_path / "state.json").read_text())
    assert {r["n"] for r in state["rows"]} == {1024, 8192}
    assert {"c-f32", "c-int8"} <= {r["impl"] for r in state["rows"]}
    assert all(r["speedup"] == 1.0 for r in state["rows"] if r["impl"] == "c-f32")
    assert "state bytes per element" in out
    assert "Targets:" in out and "memory bound" in out
    assert "row gradients" in out and "4096 uniform lookups: sparse-adam speedup" in out
    assert json.loads((tmp_path / "results.json").read_text())["row_gradients"]
    rows = json.loads((tmp_path / "results.json").read_text())["rows"]
    impls = {r["impl"] for r in rows}
    assert {"textbook", "numpy", "c-functional", "c-adam"} <= impls
    assert {r["n_tensors"] for r in rows} == {1, 3, 4}
    assert {r["impl"] for r in rows if r["n_tensors"] == 3} == {
        "c-adam", "c-adam-frozen", "c-adam-skipped-once"}
    assert "3 x 16 tensors, one param frozen: time vs every grad present" in out
    assert {r["n_tensors"] for r in rows if r["impl"] == "c-flat"} == {4}


@pytest.mark.parametrize("impl", [i for i in state_bench.IMPLS if state_bench.available(i)])
def test_every_state_case_steps_its_param(impl):
    case = state_bench.StateCase(impl, 8192, threads=1)
    before = [np.array(p, copy=True) for p in case.params]
    case.timed()()
    assert all(not np.array_equal(b, np.asarray(p)) for b, p in zip(before, case.params))


def test_state_bytes_are_measured():
    mem = state_bench.state_bytes(n=2 ** 18)  # large enough that bookkeeping is < 1%
    assert 8 <= mem["c-f32"]["per_element"] < 8.1
    assert 2 + 8 / 256 <= mem["c-int8"]["per_element"] < 2.1


@pytest.mark.parametrize("impl", [i for i in row_bench.IMPLS if row_bench.available(i)])
def test_every_row_case_steps_its_table_with_a_fresh_pool_entry(impl):
    rng = np.random.default_rng(0)
    pool = [row_bench.draw(rng, "zipf1.1", 30, 500) for _ in range(3)]
    rows = rng.standard_normal((30, 8)).astype(np.float32)
    case = row_bench.RowCase(impl, pool, rows, 500, threads=1)
    for _ in range(3):  # each pool entry in turn
        before = case.table.copy()
        case.step()
        changed = np.flatnonzero((case.table != before).any(axis=1))
        entry = pool[case._i]
        if impl == "dense-step":
            assert changed.size == 500  # every row's grad is 1e-3
        elif impl == "dense-rows":  # the rest see a zero grad, and their state starts at zero
            assert set(np.unique(entry)) <= set(changed)
        else:
            assert set(changed) == set(np.unique(entry)), "exactly the rows looked up"


def test_row_measurements_tabulate_and_meet_targets_by_their_ratios():
    rows = row_bench.measure(1, table=(2000, 8), lookups=(4096,), repeats=1)
    impls = {r["impl"] for r in rows}
    assert {"sparse-adam", "lazy-adam", "dense-rows", "dense-step"} <= impls
    assert {r["dist"] for r in rows} == set(row_bench.DISTRIBUTIONS)
    assert all(r["ns"] > 0 and 0 < r["distinct"] <= 2000 for r in rows)
    lines = row_bench.table_lines(rows)
    assert len(lines) == 2 + 2  # header, rule, one line per distribution
    fake = [dict(impl=i, k=4096, dist="uniform", threads=t, ns=ns, distinct=1)
            for i, ns in (("sparse-adam", 1.0), ("lazy-adam", 2.0), ("dense-step", 60.0),
                          ("torch-sparse-adam", 15.0)) for t in (1, 2)]
    met = {name.split(": ")[1]: (value, holds) for name, value, _, holds in
           row_bench.targets(fake)}
    assert met["sparse-adam speedup over torch-sparse-adam (1 and all threads)"] == (15.0, True)
    assert met["lazy-adam speedup over dense-step (1 and all threads)"] == (30.0, False)


def test_distributed_bench_measures_each_part_and_the_bytes():
    """python -m adamcore.bench --distributed, at a small size: every case
    launches, the parts are inside the step, the bytes are counted."""
    from adamcore.bench import distributed as dist_bench
    _, has_torch, reason = dist_bench.available()
    if reason:
        pytest.skip(reason)
    n = 2 ** 16
    rows = dist_bench.measure(sizes=(n,), ranks=(1, 2), repeats=3)
    got = {(r["impl"], r["ranks"]) for r in rows}
    expected = {("adamcore-stage2", 1), ("adamcore-stage2", 2), ("adamcore-stage1", 2)}
    assert expected | ({("torch-zero", 1), ("torch-zero", 2)} if has_torch else set()) == got
    for r in rows:
        assert r["step"] > 0 and r["state_bytes"] == r["single_state_bytes"] // r["ranks"]
        if r["impl"].startswith("adamcore"):
            # each part is a slowest rank's median, so each is within the step
            assert all(r[part] <= r["step"] for part in ("kernel", "reduce", "sum", "gather"))
            # 64 tensors of 1024 split evenly: each stage's bytes are exact
            stage = 3 if r["impl"] == "adamcore-stage1" else 2
            assert r["bytes_sent"] == stage * r["ideal_bytes"] // 2
    text = dist_bench.table(rows)
    assert text.count("\n") == len(rows) + 1 and "2^16" in text
