"""The GPU check's plumbing, without a GPU: scripts/gpu_check.sh --dry-run (staging into a
temporary folder, the size check and strip, argument parsing, the per-part limits and the total
budget, the bench JSON parsed into the summary table, the exit status), scripts/stage_gpu_payload.sh
on fake and (where one is built) real builds, and bench/cuda_bench.py's arguments and tables.

The dry runs use the scripts' own stand-ins (docs/DEVICES.md, "GPU check"): nothing here needs a
GPU or times anything; the canned results only prove that the scripts report what the parts say.
"""
import fnmatch
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
GPU_CHECK = REPO / "scripts" / "gpu_check.sh"
STAGE = REPO / "scripts" / "stage_gpu_payload.sh"
BENCH = REPO / "bench" / "cuda_bench.py"
PARTS = ("preflight", "cpp", "python", "bench", "compile")
# What lands in the log folder ($OUT on the device, which returns at most 8 files).
LOG_FILES = {f"{p}.log" for p in PARTS} | {"cuda_bench.json", "summary.md"}
# The scripts are bash + GNU coreutils + binutils programs; a machine without these cannot run
# them at all (the project's build and CI machines have them).
TOOLS = ("bash", "timeout", "objcopy", "strip", "readelf", "sha256sum", "du")
pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in TOOLS),
    reason=f"the GPU check's scripts need {', '.join(TOOLS)} (bash, coreutils, binutils)")


def _env(**extra):
    env = dict(os.environ, PYTHON=sys.executable, PYTHONDONTWRITEBYTECODE="1")
    for name in ("GPU_CHECK_DRY_RUN", "GPU_CHECK_ALL", "PREFLIGHT_TIMEOUT", "CPP_TIMEOUT",
                 "PYTHON_TIMEOUT", "COMPILE_TIMEOUT", "BENCH_TIMEOUT"):
        env.pop(name, None)
    env.update(extra)
    return env


def parts_table(output):
    """{part: (status, seconds, limit, summary)} from the parts table that ends the output."""
    rows = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] in PARTS:
            rows[cells[0]] = (cells[1], int(cells[2]), int(cells[3]), cells[4])
    return rows


def bench_rows(output):
    """The bench table's data rows: [shape, N, dtype, indices, check, ...]."""
    return [[c.strip() for c in line.strip().strip("|").split("|")]
            for line in output.splitlines()
            if re.match(r"\| (gpt2|llama3|llama|bigvocab) \| \d+ \|", line)]


# Every scenario runs once, all at the same time (they mostly wait), for the tests below.
SCENARIOS = {
    "pass": ["--dry-run"],
    "fail": ["--dry-run=fail"],
    "timeout": ["--dry-run=timeout"],
    "nogpu": ["--dry-run=nogpu"],
    "spent": ["--dry-run", "--budget", "3"],
    "only_strict": ["--dry-run", "--only", "cpp,bench", "--strict"],
    "only": ["--dry-run", "--only=cpp"],
}


@pytest.fixture(scope="module")
def dry_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("gpu_check")
    running = {}
    for name, args in SCENARIOS.items():
        logs = root / name
        running[name] = (logs, subprocess.Popen(
            ["bash", str(GPU_CHECK), *args], cwd=REPO, env=_env(GPU_CHECK_LOGS=str(logs)),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
    results = {}
    for name, (logs, process) in running.items():
        output, _ = process.communicate(timeout=240)
        results[name] = (process.returncode, output, logs)
    return results


def test_dry_run_passes_and_ends_with_both_tables(dry_runs):
    rc, output, logs = dry_runs["pass"]
    assert rc == 0, output
    parts = parts_table(output)
    assert list(parts) == list(PARTS), output
    assert all(status == "PASS" for status, *_ in parts.values()), parts
    assert output.rstrip().endswith("gpu_check: PASSED")
    # Staging ran for real into the temporary folder, and had to strip to fit its 1 MiB limit.
    assert "stripping debug sections" in output and "stripped: yes" in output
    # The preflight compared the payload's torch release with the running one.
    assert "payload built against 2.11.0" in (logs / "preflight.log").read_text()
    # The C++ part ran the CUDA instances; the Python parts split on compile.
    assert "--gtest_filter=*/Cuda*" in output
    assert "-k cuda and not compile" in (logs / "python.log").read_text()
    assert "-k cuda and compile" in (logs / "compile.log").read_text()
    assert parts["cpp"][3] == "3 ran: 2 passed, 1 skipped, 0 failed"  # summed over 2 shards
    assert (logs / "cpp.log").read_text().count("--- shard ") == 2
    assert parts["python"][3].startswith("42 passed, 3 skipped")
    # The bench table: GPT-2 and Llama-3 at N = 8192 and 65536, both dtypes and distributions,
    # parsed back from the bench's JSON, with the verdict as the bench part's summary.
    rows = bench_rows(output)
    assert {(r[0], r[1], r[2], r[3]) for r in rows} == {
        (shape, n, dtype, dist) for shape in ("gpt2", "llama3") for n in ("8192", "65536")
        for dtype in ("float32", "bfloat16") for dist in ("uniform", "zipf")}
    assert len(rows) == 16 and all(r[4] == "ok" for r in rows)
    assert "✗" in output  # the synthetic numbers miss some targets on purpose
    assert parts["bench"][3].startswith("bench: 16 of 16 rows; ")
    data = json.loads((logs / "cuda_bench.json").read_text())
    assert data["meta"]["complete"] and data["meta"]["dry_run"] and len(data["rows"]) == 16
    # At most 8 files come back from $OUT: the log folder holds exactly these.
    assert {p.name for p in logs.iterdir()} == LOG_FILES
    assert (logs / "summary.md").read_text().rstrip().endswith("gpu_check: PASSED")


def test_dry_run_reports_failed_parts_and_exits_1(dry_runs):
    rc, output, _ = dry_runs["fail"]
    assert rc == 1, output
    parts = parts_table(output)
    assert parts["cpp"][0] == "FAIL (exit 1)"
    assert parts["cpp"][3] == "3 ran: 1 passed, 1 skipped, 1 failed"
    assert parts["python"][0] == "FAIL (exit 1)"
    assert parts["python"][3].startswith("1 failed, 41 passed")
    # A payload staged from other sources than the tree's is a warning, not a failure.
    assert parts["preflight"][3].endswith("WARNING: stale payload (built from other sources)")
    assert {p: parts[p][0] for p in ("preflight", "compile", "bench")} == dict.fromkeys(
        ("preflight", "compile", "bench"), "PASS"), "every part runs after a failure"
    # The lines that say why are shown, not only the logs.
    assert "[  FAILED  ] Backward.Sums/Cuda_BFloat16" in output
    assert "FAILED tests/python/test_oracle.py::test_forward[cuda]" in output
    assert output.rstrip().endswith("gpu_check: FAILED (cpp python)")


def test_dry_run_kills_a_part_at_its_limit_and_goes_on(dry_runs):
    rc, output, logs = dry_runs["timeout"]
    assert rc == 1, output
    parts = parts_table(output)
    status, seconds, limit, summary = parts["python"]
    assert status == "TIMEOUT" and limit == 4
    assert seconds <= limit + 3, "the kill came late"  # --kill-after 1, plus rounding
    assert summary == "killed at the 4 s limit; 1 passed, 0 failed before the kill"
    assert parts["bench"][0] == parts["compile"][0] == "PASS", "the parts after it still run"
    # A C++ shard hangs: the part is stopped at its limit, with every shard's output kept.
    status, seconds, limit, summary = parts["cpp"]
    assert status == "TIMEOUT" and limit == 3 and seconds <= limit + 3
    assert summary == "killed at the 3 s limit; 2 ran: 2 passed, 0 skipped, 0 failed"
    cpp_log = (logs / "cpp.log").read_text()
    assert "--- shard 1 of 2" in cpp_log and "[ RUN      ] DeviceAssertion.Backward" in cpp_log
    assert output.rstrip().endswith("gpu_check: FAILED (cpp python)")


def test_dry_run_without_a_gpu_fails_the_preflight(dry_runs):
    rc, output, _ = dry_runs["nogpu"]
    assert rc == 1
    status, _, _, summary = parts_table(output)["preflight"]
    assert status == "FAIL (exit 1)" and summary.startswith("no GPU;"), summary
    assert "torch.cuda.is_available() is False" in output


def test_dry_run_parts_that_find_the_budget_spent_fail(dry_runs):
    rc, output, _ = dry_runs["spent"]
    assert rc == 1
    parts = parts_table(output)
    assert [parts[p][0] for p in PARTS] == ["NO TIME"] * 5, parts
    assert all(parts[p][1] == 0 for p in PARTS)


def test_dry_run_only_and_strict(dry_runs):
    rc, output, _ = dry_runs["only_strict"]
    assert rc == 1
    parts = parts_table(output)
    assert [parts[p][0] for p in ("preflight", "python", "compile")] == ["not selected"] * 3
    assert parts["cpp"][0] == "PASS"
    assert parts["bench"][0] == "FAIL (targets missed)", "--strict fails on a ✗"
    rc, output, _ = dry_runs["only"]
    assert rc == 0, "parts left out by --only do not fail the check"
    assert parts_table(output)["bench"][0] == "not selected"


@pytest.mark.parametrize("args, message", [
    (["--bogus"], "unknown option --bogus"),
    (["--budget", "soon"], "--budget: not a whole number"),
    (["--workers", "0"], "--workers: not a positive whole number"),
    (["--only", "gpu"], "--only: unknown part 'gpu'"),
    (["--dry-run=maybe"], "choose pass, fail, timeout or nogpu"),
    (["a", "b"], "one folder only"),
    (["/nonexistent/payload"], "no payload or build folder"),
])
def test_bad_arguments_exit_2(args, message):
    result = subprocess.run(["bash", str(GPU_CHECK), *args], cwd=REPO, env=_env(),
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_help_describes_every_part():
    result = subprocess.run(["bash", str(GPU_CHECK), "--help"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0
    for part in PARTS:
        assert re.search(rf"^  {part} ", result.stdout, re.M), part


# --- the C++ filter covers every test that needs a GPU ------------------------------------------

def _gtest_matches(pattern_list, name):
    """GoogleTest's --gtest_filter for positive patterns: '*' and '?' globs joined by ':'."""
    return any(fnmatch.fnmatchcase(name, p) for p in pattern_list.split(":"))


def test_cpp_filter_covers_every_cuda_only_test():
    """A CUDA-only C++ test that the filter misses would never run anywhere: CI has no GPU and
    the GPU check would leave it out. CUDA-only here: a TEST_P over the backend axis (its Cuda
    instance), or a TEST_F/TEST whose fixture or body skips without CUDA."""
    cpp_filter = re.search(r"^cpp_filter='([^']+)'$", GPU_CHECK.read_text(), re.M).group(1)
    assert _gtest_matches(cpp_filter, "Backward.Sums/Cuda_BFloat16_Int")
    assert _gtest_matches(cpp_filter, "LargeSizes.TableOverTwoToTheThirtyOneElementsLookup/Cuda")
    assert not _gtest_matches(cpp_filter, "Backward.Sums/CpuKernels_BFloat16_Int")
    assert not _gtest_matches(cpp_filter, "Backward.Sums/AtenFallback")
    skips_without_gpu = re.compile(r"if \(!torch::cuda::is_available\(\)\)\s*(\{\s*)?GTEST_SKIP")
    needs_gpu = []
    for source in sorted((REPO / "tests" / "cpp").glob("*.cpp")):
        text = source.read_text()
        fixtures = {m.group(1) for m in re.finditer(
            r"^class (\w+) : public [\w:]+ \{(.*?)^\};", text, re.M | re.S)
            if skips_without_gpu.search(m.group(2))}
        for m in re.finditer(r"^TEST(_F)?\((\w+), (\w+)\) \{(.*?)^\}", text, re.M | re.S):
            if (m.group(1) and m.group(2) in fixtures) or skips_without_gpu.search(m.group(4)):
                needs_gpu.append(f"{m.group(2)}.{m.group(3)}")
    assert "DeviceAssertion.Forward" in needs_gpu  # the pattern still finds the real ones
    missed = [name for name in needs_gpu if not _gtest_matches(cpp_filter, name)]
    assert not missed, f"CUDA-only C++ tests outside gpu_check.sh's cpp_filter: {missed}"


# --- the staging script on fake builds -----------------------------------------------------------

def _fake_build(root, fatbin_bytes=16, debug_bytes=0):
    """A build folder whose library is an ELF file with a .nv_fatbin section of the given size
    (0: none) and a debug section; the test binary is a script."""
    build = root / "build"
    (build / "tests" / "cpp").mkdir(parents=True)
    library = build / "libunit_scaling.so.0.1.0"
    sections = []
    for name, size in ((".nv_fatbin", fatbin_bytes), (".debug_pad", debug_bytes)):
        if size:
            blob = root / name.strip(".")
            blob.write_bytes(os.urandom(size))  # incompressible, as real sections are
            sections += ["--add-section", f"{name}={blob}"]
    subprocess.run(["objcopy", *sections, os.path.realpath(shutil.which("timeout")),
                    str(library)], check=True)
    (build / "libunit_scaling.so.0").symlink_to(library.name)
    gtest = build / "tests" / "cpp" / "unit_scaling_tests"
    gtest.write_text("#!/bin/sh\necho fake\n")
    gtest.chmod(0o755)
    return build


def _stage(*args):
    return subprocess.run(["bash", str(STAGE), "--python", sys.executable, *map(str, args)],
                          cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120)


needs_reference = pytest.mark.skipif(
    importlib.util.find_spec("unit_scaling") is None
    or importlib.util.find_spec("docstring_parser") is None,
    reason="the staging copies the reference library unit_scaling and docstring_parser from "
           "this Python (requirements-test.txt), which lacks them")


@needs_reference
def test_stage_copies_what_gpu_check_needs_and_no_symlinks(tmp_path):
    build = _fake_build(tmp_path)
    result = _stage(build, tmp_path / "payload")
    assert result.returncode == 0, result.stderr
    payload = tmp_path / "payload"
    files = {str(p.relative_to(payload)) for p in payload.rglob("*") if p.is_file()}
    assert {"MANIFEST", "libunit_scaling.so.0", "tests/cpp/unit_scaling_tests",
            "pydeps/unit_scaling/__init__.py", "pydeps/docstring_parser/__init__.py"} <= files
    assert not any(p.is_symlink() for p in payload.rglob("*")), "links travel as links only"
    assert not any("__pycache__" in f for f in files)
    manifest = (payload / "MANIFEST").read_text()
    assert "cuda_kernels: yes" in manifest and "stripped: no" in manifest
    assert re.search(r"^source_state: [0-9a-f]{16}$", manifest, re.M)
    assert "outside the repository" in result.stdout


@needs_reference
def test_stage_strips_debug_sections_to_fit(tmp_path):
    build = _fake_build(tmp_path, debug_bytes=2 << 20)
    result = _stage("--limit-mib", 1, build, tmp_path / "payload")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "stripped: yes" in (tmp_path / "payload" / "MANIFEST").read_text()
    assert (tmp_path / "payload" / "libunit_scaling.so.0").stat().st_size < 1 << 20


@needs_reference
def test_stage_fails_above_the_size_limit(tmp_path):
    build = _fake_build(tmp_path, fatbin_bytes=2 << 20)  # kernels: nothing to strip
    result = _stage("--limit-mib", 1, build, tmp_path / "payload")
    assert result.returncode == 1
    assert "is over the limit (1 MiB for the payload" in result.stderr


@needs_reference
def test_stage_refuses_a_library_without_cuda_kernels(tmp_path):
    build = _fake_build(tmp_path, fatbin_bytes=0)
    result = _stage(build, tmp_path / "payload")
    assert result.returncode == 2 and "holds no CUDA kernels" in result.stderr
    result = _stage("--allow-no-cuda", build, tmp_path / "payload")
    assert result.returncode == 0, result.stderr
    assert "cuda_kernels: no" in (tmp_path / "payload" / "MANIFEST").read_text()


def test_stage_builds_nothing_and_names_what_is_missing(tmp_path):
    result = _stage(tmp_path, tmp_path / "payload")
    assert result.returncode == 2
    assert "libunit_scaling.so.0 is missing: build it first" in result.stderr
    assert not (tmp_path / "payload").exists()


@needs_reference
def test_stage_never_replaces_a_folder_it_did_not_make(tmp_path):
    build = _fake_build(tmp_path)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep")
    result = _stage(build, foreign)
    assert result.returncode == 2 and "not replacing it" in result.stderr
    assert (foreign / "notes.txt").read_text() == "keep"
    assert _stage(build, tmp_path / "payload").returncode == 0
    assert _stage(build, tmp_path / "payload").returncode == 0, "its own payload is replaced"


@needs_reference
def test_stage_inside_the_repository_prints_the_run_invocation(tmp_path):
    build = _fake_build(tmp_path)
    name = f"build-gpu-payload-test-{os.getpid()}"  # ignored by git's /build*/
    try:
        result = _stage(build, REPO / name)
        assert result.returncode == 0, result.stderr
        assert (f'run(command="GPU_CHECK_LOGS=$OUT scripts/gpu_check.sh {name}", '
                f'carry=["{name}"], timeout_s=420)') in result.stdout
        assert "not ignored by git" not in result.stderr
    finally:
        shutil.rmtree(REPO / name, ignore_errors=True)


def _real_build():
    """A finished CMake build of this tree with the CUDA backend, if there is one here."""
    candidates = [os.environ.get("UNIT_SCALING_BUILD_DIR"), os.environ.get("BUILD_DIR"),
                  os.path.dirname(os.environ.get("UNIT_SCALING_CPP_LIBRARY", "")) or None,
                  str(REPO / "build")]
    for folder in filter(None, candidates):
        folder = Path(folder)
        if ((folder / "libunit_scaling.so.0").is_file()
                and (folder / "tests" / "cpp" / "unit_scaling_tests").is_file()):
            return folder
    return None


@needs_reference
def test_real_build_payload_fits_the_device_limit(tmp_path):
    build = _real_build()
    if build is None:
        pytest.skip("no finished build of the C++ suite here (scripts/test.sh makes build/)")
    sections = subprocess.run(["readelf", "-S", "-W", str(build / "libunit_scaling.so.0")],
                              capture_output=True, text=True).stdout
    if ".nv_fatbin" not in sections:
        pytest.skip(f"{build} was built without the CUDA backend (no nvcc): its payload would "
                    "not be the one that travels")
    result = _stage(build, tmp_path / "payload")
    assert result.returncode == 0, result.stdout + result.stderr
    size = sum(p.stat().st_size for p in (tmp_path / "payload").rglob("*") if p.is_file())
    assert size <= 64 << 20


# --- bench/cuda_bench.py without a GPU -----------------------------------------------------------

def _bench(*args):
    return subprocess.run([sys.executable, str(BENCH), *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def _bench_module():
    spec = importlib.util.spec_from_file_location("cuda_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_keeps_its_options_and_adds_token_counts():
    bench = _bench_module()
    args = bench.parse_args([])
    assert args.shapes == ["gpt2", "llama", "bigvocab"] and args.tokens is None
    assert (args.warmup, args.repeats) == (10, 50)
    assert [(s, n) for s, n, *_ in bench.configurations(args)][::4] == [
        ("gpt2", 8192), ("llama", 4096), ("bigvocab", 4096)]
    args = bench.parse_args(["--quick", "--shapes", "gpt2,llama3", "--tokens", "8192,65536",
                             "--dists", "zipf", "--dtypes", "bfloat16", "--repeats", "7"])
    assert (args.warmup, args.repeats) == (3, 7)
    assert bench.configurations(args) == [
        ("gpt2", 8192, "bfloat16", "zipf"), ("gpt2", 65536, "bfloat16", "zipf"),
        ("llama3", 8192, "bfloat16", "zipf"), ("llama3", 65536, "bfloat16", "zipf")]
    assert bench.SHAPES["llama3"][:2] == (128256, 4096) and bench.SHAPES["gpt2"][:2] == (50257, 768)


@pytest.mark.parametrize("args, message", [
    (["--shapes", "gpt5"], "--shapes: unknown ['gpt5']"),
    (["--tokens", "8192,0"], "--tokens: expected positive whole numbers"),
    (["--tokens", "many"], "--tokens: expected positive whole numbers"),
    (["--dtypes", "float8"], "--dtypes: unknown"),
    (["--repeats", "0"], "--repeats: 0 is too small"),
])
def test_bench_rejects_bad_arguments(args, message):
    result = _bench(*args)
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_bench_dry_run_writes_json_that_summarize_reads_back(tmp_path):
    out = tmp_path / "bench.json"
    result = _bench("--dry-run", "--shapes", "gpt2", "--tokens", "8192", "--out", out)
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert len(data["rows"]) == 4 and data["meta"]["planned"] == 4 and data["meta"]["complete"]
    summary = _bench("--summarize", out)
    assert summary.returncode == 0
    assert summary.stdout == result.stdout, "the table from the JSON is the table of the run"
    assert _bench("--summarize", out, "--strict").returncode == 3  # synthetic misses
    # Ratios against the targets: ✗ exactly where a ratio is over its target.
    bench = _bench_module()
    for row in data["rows"]:
        line = next(l for l in summary.stdout.splitlines()
                    if l.startswith(f"| {row['shape']} | {row['N']} | {row['dtype']} | "
                                    f"{row['dist']} |"))
        cells = [c.strip() for c in line.strip("|").split("|")]
        for column, key in ((6, "fwd_vs_aten"), (8, "bwd_vs_aten"), (9, "bwd_vs_floor"),
                            (10, "fwdbwd_vs_ref")):
            assert cells[column].endswith("✗") == (row[key] > bench.TARGETS[key]), (key, line)
        assert cells[11] == "3/9"  # launches per backward, ours/ATen


def test_bench_summarize_partial_failed_and_broken_results(tmp_path):
    bench = _bench_module()
    good = bench.dry_run_row("gpt2", 8192, "uniform", "float32", 3e12)
    for key in ("fwd_vs_aten", "bwd_vs_aten", "bwd_vs_floor", "fwdbwd_vs_ref"):
        good[key] = bench.TARGETS[key] / 2
    meta = {"device": "test", "torch": "none", "cuda_path": "x", "copy_bandwidth_gbs": 3000.0,
            "planned": 4, "complete": False}
    path = tmp_path / "bench.json"
    path.write_text(json.dumps({"meta": meta, "rows": [good]}))
    result = _bench("--summarize", path)
    assert result.returncode == 0
    assert result.stdout.splitlines()[-1] == (
        "bench: 1 of 4 rows (stopped early); 0 miss a target; 0 fail the check")
    assert _bench("--summarize", path, "--strict").returncode == 3, "missing rows under --strict"
    error_row = {"shape": "llama3", "V": 128256, "D": 4096, "N": 65536, "dist": "zipf",
                 "dtype": "float32", "check": "ERROR", "error": "OutOfMemoryError: ..."}
    path.write_text(json.dumps({"meta": meta, "rows": [good, dict(good, check="FAIL"),
                                                       error_row]}))
    result = _bench("--summarize", path)
    assert result.returncode == 1
    assert "| llama3 | 65536 | float32 | zipf | ERROR |" in result.stdout
    assert result.stdout.splitlines()[-1].endswith("2 fail the check")
    path.write_text("{not json")
    result = _bench("--summarize", path)
    assert result.returncode == 1 and "bench: cannot read" in result.stdout


def test_bench_without_a_gpu_says_so():
    pytest.importorskip("torch")
    if __import__("torch").cuda.is_available():
        pytest.skip("a GPU is visible: the bench would run for real")
    result = _bench("--quick", "--shapes", "gpt2")
    assert result.returncode == 2 and "no CUDA device visible" in result.stderr
