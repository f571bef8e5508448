"""bench/cuda_bench.py without a GPU: its run order, the backward-variant and renorm tables, the
JSON it writes as it goes, its verdict and exit status, its time estimate (the GPU numbers
themselves come from a GPU run; test_gpu_check.py covers the options it shares with
scripts/gpu_check.py)."""
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench" / "cuda_bench.py"
VARIANTS = ["baseline", "hot_rows", "side_zero", "merge_path", "all"]


def _bench(*args):
    return subprocess.run([sys.executable, str(BENCH), *map(str, args)], capture_output=True,
                          text=True, timeout=120)


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("cuda_bench_under_test", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _table(stdout, first_cell):
    """The cells of the markdown lines whose first cell starts with `first_cell`."""
    return [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in stdout.splitlines()
            if line.startswith("| " + first_cell)]


def test_the_decisive_configurations_run_first_then_renorm_then_the_rest(bench):
    args = bench.parse_args(["--shapes", "llama,gpt2,llama3", "--tokens", "4096,8192,65536"])
    order = bench.configurations(args)
    decisive = [(shape, n, "bfloat16", dist) for shape in ("gpt2", "llama3")
                for n in (8192, 65536) for dist in ("uniform", "zipf")]
    assert order[:8] == decisive
    assert not any(bench.is_decisive(*c[:3]) for c in order[8:])
    assert len(order) == 3 * 3 * 2 * 2
    assert order[8] == ("llama", 4096, "float32", "uniform"), "the rest in the options' order"
    schedule = bench.schedule(args)
    kinds = [kind for kind, _ in schedule]
    assert kinds == ["config"] * 8 + ["renorm"] * 8 + ["config"] * 28
    renorm = [item for kind, item in schedule if kind == "renorm"]
    assert renorm[0] == ("llama3", 65536, "bfloat16", "uniform", 2.0)
    assert {r[4] for r in renorm} == {2.0, float("inf")}


def test_dry_run_covers_every_row_type_and_summarize_prints_the_same(tmp_path):
    out = tmp_path / "bench.json"
    result = _bench("--dry-run", "--quick", "--shapes", "gpt2,llama3", "--tokens", "8192,65536",
                    "--out", out)
    assert result.returncode == 0, result.stderr
    # The plan, first, on stderr: what the GPU check's budget is sized from.
    plan = result.stderr.splitlines()[0]
    assert plan.startswith("cuda_bench: plan: 16 configurations (8 decisive, first) x backward: "
                           "default + 5 variants (baseline,hot_rows,side_zero,merge_path,all)")
    assert "8 renorm rows" in plan and "3 warm-up + 15 timed calls" in plan
    assert "estimated" in plan and "on an H100" in plan
    data = json.loads(out.read_text())
    assert set(data) == {"meta", "rows", "renorm"}
    assert data["meta"]["variants"] == VARIANTS and data["meta"]["renorm_planned"] == 8
    assert data["meta"]["plan"]["variant_timings"] == 80
    rows = data["rows"]
    assert len(rows) == 16 and [r["decisive"] for r in rows] == [True] * 8 + [False] * 8
    for row in rows:
        assert list(row["variants"]) == VARIANTS and row["default_check"] == "ok"
        for entry in row["variants"].values():
            assert {"check", "ms", "gbs", "vs_floor", "vs_aten", "launches"} <= set(entry)
    assert len(data["renorm"]) == 8
    assert {(r["p"], r["dtype"], r["dist"]) for r in data["renorm"]} == {
        (p, dtype, dist) for p in ("2", "inf") for dtype in ("float32", "bfloat16")
        for dist in ("uniform", "zipf")}
    # The tables: per configuration ATen, the default and five variants; eight renorm rows.
    lines = _table(result.stdout, "gpt2 N=8192 bfloat16 zipf |")
    assert [cells[1] for cells in lines] == ["aten dense_backward + mul_", "default (unset)",
                                             *VARIANTS]
    assert all(cells[2] == "ok" for cells in lines)
    assert len(_table(result.stdout, "p=")) == 8
    assert result.stdout.splitlines()[-1].startswith(
        "bench: 16 of 16 rows; ")
    assert "; variants: 80 of 80 timed, 0 differ or raise; renorm: 8 of 8 rows, 0 fail the " \
           "check (dry run: synthetic numbers)" in result.stdout.splitlines()[-1]
    summary = _bench("--summarize", out)
    assert summary.returncode == 0 and summary.stdout == result.stdout


def test_a_variant_that_differs_or_raises_is_marked_and_fails(bench, tmp_path):
    rows = [bench.dry_run_row("gpt2", 8192, dist, "bfloat16", 3e12) for dist in bench.DISTS]
    rows[0]["variants"]["hot_rows"]["check"] = "DIFFERS"
    del rows[1]["variants"]["side_zero"]["ms"]
    rows[1]["variants"]["side_zero"].update(check="ERROR", error="RuntimeError: boom")
    meta = {"planned": 2, "variants": VARIANTS, "complete": True, "device": "test"}
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"meta": meta, "rows": rows}))
    result = _bench("--summarize", path)
    assert result.returncode == 1, result.stdout
    assert _table(result.stdout, "gpt2 N=8192 bfloat16 uniform | hot_rows |")[0][2] == \
        "DIFFERS ✗"
    assert _table(result.stdout, "gpt2 N=8192 bfloat16 zipf | side_zero |")[0][2:4] == \
        ["ERROR ✗", ""]
    assert "- gpt2 N=8192 bfloat16 zipf, side_zero: RuntimeError: boom" in result.stdout
    assert result.stdout.splitlines()[-1].endswith(
        "variants: 9 of 10 timed, 2 differ or raise")
    # The default backward differing from the baseline fails too.
    rows = [bench.dry_run_row("gpt2", 8192, "uniform", "bfloat16", 3e12)]
    rows[0]["default_check"] = "DIFFERS"
    path.write_text(json.dumps({"meta": dict(meta, planned=1), "rows": rows}))
    result = _bench("--summarize", path)
    assert result.returncode == 1 and "| default (unset) | DIFFERS ✗ |" in result.stdout


def test_variants_option_and_a_library_that_ignores_the_variable(bench, tmp_path):
    out = tmp_path / "bench.json"
    result = _bench("--dry-run", "--shapes", "gpt2", "--tokens", "8192", "--variants",
                    "all,hot_rows", "--renorm", "none", "--out", out)
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert [list(r["variants"]) for r in data["rows"]] == [["all", "hot_rows"]] * 4
    assert data["renorm"] == [] and "| p=" not in result.stdout
    assert "renorm:" not in result.stdout.splitlines()[-1]
    result = _bench("--dry-run", "--shapes", "gpt2", "--tokens", "8192", "--variants", "none")
    assert result.returncode == 0 and "backward variants" not in result.stdout
    assert "variants:" not in result.stdout.splitlines()[-1]
    result = _bench("--variants", "hot_row")
    assert result.returncode == 2 and "--variants: unknown ['hot_row']" in result.stderr
    # A GPU run whose library does not read UNIT_SCALING_BACKWARD_VARIANT says so; --strict fails.
    rows = [bench.dry_run_row("gpt2", 8192, "uniform", "bfloat16", 3e12, variants=())]
    meta = {"planned": 1, "variants": VARIANTS, "complete": True,
            "variants_skipped": "this library ignores UNIT_SCALING_BACKWARD_VARIANT"}
    out.write_text(json.dumps({"meta": meta, "rows": rows}))
    result = _bench("--summarize", out)
    assert result.returncode == 0
    assert "backward variants: not timed (this library ignores" in result.stdout
    assert result.stdout.splitlines()[-1].endswith(
        "variants: not timed (this library ignores UNIT_SCALING_BACKWARD_VARIANT)")
    assert _bench("--summarize", out, "--strict").returncode == 3


def test_renorm_rows_fail_the_run_when_their_check_fails(bench, tmp_path):
    rows = [bench.dry_run_row("gpt2", 8192, "uniform", "bfloat16", 3e12)]
    renorm = [bench.dry_run_renorm_row("llama3", 65536, "bfloat16", "uniform", p, 3e12)
              for p in (2.0, float("inf"))]
    renorm[1]["check"] = "FAIL"
    renorm.append({"shape": "llama3", "N": 65536, "dtype": "float32", "dist": "zipf",
                   "p": "2", "check": "ERROR", "error": "OutOfMemoryError: ..."})
    meta = {"planned": 1, "variants": VARIANTS, "renorm_planned": 4, "complete": False}
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"meta": meta, "rows": rows, "renorm": renorm}))
    result = _bench("--summarize", path)
    assert result.returncode == 1
    assert _table(result.stdout, "p=inf |")[0][6] == "FAIL ✗"
    assert _table(result.stdout, "p=2 | llama3 | 65536 | float32")[0][6] == "ERROR ✗"
    assert result.stdout.splitlines()[-1].endswith("renorm: 3 of 4 rows, 2 fail the check")


def test_the_json_is_rewritten_after_every_row_and_variant(bench, tmp_path, monkeypatch):
    written = []

    def record(path, meta, rows, renorm_rows=()):
        written.append((len(rows), len(renorm_rows)))

    monkeypatch.setattr(bench, "write_json", record)
    status = bench.main(["--dry-run", "--shapes", "gpt2", "--tokens", "8192,65536",
                         "--dtypes", "bfloat16", "--out", str(tmp_path / "b.json")])
    assert status == 0
    # One write per finished configuration and renorm row (the dry run finishes a row at once),
    # in the schedule's order: 4 decisive configurations, then 4 renorm rows; and a final one.
    assert written == [(1, 0), (2, 0), (3, 0), (4, 0), (4, 1), (4, 2), (4, 3), (4, 4), (4, 4)]


def test_the_time_estimate_counts_the_work(bench):
    check = bench.estimate_args(bench.parse_args(
        ["--quick", "--shapes", "gpt2,llama3", "--tokens", "8192,65536"]))
    assert (check["configurations"], check["decisive"], check["variant_timings"],
            check["renorm_rows"], check["calls_per_measurement"]) == (16, 8, 80, 8, 21)
    assert 30 < check["total_s"] < 150 and check["device_s"] < check["fixed_s"]
    full = bench.estimate_args(bench.parse_args(["--shapes", "gpt2,llama3", "--tokens",
                                                 "8192,65536"]))
    assert full["device_s"] > 2.5 * check["device_s"], "50 repeats move about 3x the bytes"
    result = _bench("--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())
    assert "--quick, default set: 12 configurations" in text
    assert f"(scripts/gpu_check.py): {bench.describe_plan(check)}" in text
