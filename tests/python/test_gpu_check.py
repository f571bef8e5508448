"""The GPU check without a GPU: scripts/gpu_check.py's counted plan (every part's limit, the first
call inside 8 minutes, recounted against this tree where it is built), its --dry-run scenarios
(staging into a temporary folder, the limits, the kills, the tables, the second call it prints,
the exit statuses), scripts/stage_gpu_payload.py on fake builds (device_check staged and counted,
the size check and strip), and the bench flags the check passes.

The dry runs use the check's stand-ins (scripts/gpu_check_dry.py): nothing here needs a GPU or
times anything; the canned results only prove that the check reports what its parts say.
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
sys.path.insert(0, str(REPO / "scripts"))
import gpu_check  # noqa: E402
import stage_gpu_payload as staging  # noqa: E402

GPU_CHECK = REPO / "scripts" / "gpu_check.py"
BENCH = REPO / "bench" / "cuda_bench.py"
FIRST = ["fallback", "preflight", "cpp", "python", "bench", "compile"]
SECOND = ["preflight", "bench_fp32", "bench_shapes", "compile_rest"]
EIGHT_MINUTES = 480
pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in ("objcopy", "strip", "readelf", "git")),
    reason="the staging and its fake builds need binutils (objcopy, strip, readelf) and git")


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPU_CHECK")}
    return {**env, "PYTHONDONTWRITEBYTECODE": "1", "NVCC": "/nonexistent/nvcc", **extra}


def parts_table(output):
    """{part: (status, seconds, limit, cases, summary)} from the parts table ending the output."""
    rows = {}
    for line in output.split("=== gpu_check parts:")[-1].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[0] in gpu_check.BY_NAME:
            rows[cells[0]] = (cells[1], int(cells[2]), int(cells[3]), int(cells[4]), cells[5])
    return rows


def plan_limits(output):
    """{part: limit} from the plan table printed first."""
    plan = output.split("call's plan")[1].split("basis")[0]
    return {c[0]: int(c[6]) for c in (
        [x.strip() for x in line.strip("|").split("|")] for line in plan.splitlines())
        if len(c) == 7 and c[0] in gpu_check.BY_NAME}


def bench_rows(output):
    return [[c.strip() for c in line.strip("|").split("|")] for line in output.splitlines()
            if re.match(r"\| (gpt2|llama3|llama|bigvocab) \| \d+ \|", line)]


# --- the plan ---------------------------------------------------------------------------------

def test_first_call_plan_fits_eight_minutes_and_prints_every_limit():
    parts = gpu_check.call_parts(second=False)
    assert [p.name for p in parts] == FIRST, "the fallback first, the cold compiles last"
    limits = {p.name: p.limit(4) for p in parts}
    assert sum(limits.values()) + gpu_check.RESERVE <= gpu_check.BUDGET <= EIGHT_MINUTES - 30
    for p in parts:  # every limit covers its counted estimate with a margin
        assert p.estimate(4) * 1.2 <= limits[p.name] < p.estimate(4) * 2 + 5, p.name
    result = subprocess.run([sys.executable, str(GPU_CHECK), "--plan"], capture_output=True,
                            text=True, timeout=60, env=_env())
    assert result.returncode == 0 and plan_limits(result.stdout) == limits
    assert f"{sum(limits.values()) + 10} of the 450 s budget" in result.stdout
    for p in parts:
        assert f"  {p.name}: {p.basis}" in result.stdout, "each per-case cost says its basis"
    assert "second call (--second, optional): preflight, bench_fp32, bench_shapes, " \
           "compile_rest" in result.stdout


def test_second_call_plan_fits_even_when_it_redoes_the_first_calls_suites():
    second = gpu_check.call_parts(second=True)
    assert [p.name for p in second] == SECOND
    redo = second + [gpu_check.BY_NAME["cpp"], gpu_check.BY_NAME["python"]]
    assert sum(p.limit(4) for p in redo) + gpu_check.RESERVE <= gpu_check.BUDGET
    plan = subprocess.run([sys.executable, str(GPU_CHECK), "--plan", "--second"],
                          capture_output=True, text=True, timeout=60, env=_env()).stdout
    assert list(plan_limits(plan)) == SECOND


def test_cold_compiles_are_few_and_the_bench_starts_with_the_decisive_rows():
    compile_first = gpu_check.BY_NAME["compile"]
    assert compile_first.cases <= 3 and "dynamic" in compile_first.args[0] \
        and "reduce_overhead" in compile_first.args[0]
    rest = gpu_check.BY_NAME["compile_rest"].args[0]
    assert rest == compile_first.args[0].replace("and (", "and not (")
    assert gpu_check.BY_NAME["bench"].args == ("--shapes", "gpt2,llama3", "--tokens",
                                               "8192,65536", "--dtypes", "bfloat16")
    assert gpu_check.BY_NAME["bench_fp32"].args[-1] == "float32"


def _real_build():
    """A finished CMake build of this tree (the library and the C++ suite), if there is one."""
    for folder in filter(None, (os.environ.get("UNIT_SCALING_BUILD_DIR"),
                                os.environ.get("BUILD_DIR"),
                                os.path.dirname(os.environ.get("UNIT_SCALING_CPP_LIBRARY", "")),
                                str(REPO / "build"))):
        folder = Path(folder)
        if (folder / staging.LIBRARY).is_file() and (folder / staging.GTEST).is_file():
            return folder
    return None


def test_the_plan_is_counted_from_this_tree():
    """--count recounts every part here: the plan's counts must be near them (else update PARTS
    in scripts/gpu_check.py), and the plan with the recounted cases must still fit."""
    build = _real_build()
    if build is None:
        pytest.skip("no finished build of the C++ suite here (scripts/test.sh makes build/)")
    result = subprocess.run([sys.executable, str(GPU_CHECK), "--count", str(build)], cwd=REPO,
                            capture_output=True, text=True, timeout=300, env=_env())
    assert result.returncode == 0, result.stdout + result.stderr
    counted = json.loads(result.stdout.split("COUNTS ")[1])
    for p in gpu_check.PARTS:
        if p.name in counted:
            assert counted[p.name] is not None, (p.name, result.stdout)
            assert 0.8 * p.cases <= counted[p.name] <= 1.2 * p.cases, \
                f"{p.name}: {counted[p.name]} cases here, the plan says {p.cases}: recount"
    for second in (False, True):
        parts = [p.recounted(counted.get(p.name, p.cases)) for p in gpu_check.call_parts(second)]
        assert sum(p.limit(4) for p in parts) + gpu_check.RESERVE <= gpu_check.BUDGET


# --- the dry runs -----------------------------------------------------------------------------

SCENARIOS = {
    "pass": ["--dry-run"],
    "fail": ["--dry-run=fail"],
    "timeout": ["--dry-run=timeout"],
    "nogpu": ["--dry-run=nogpu"],
    "spent": ["--dry-run", "--budget", "3"],
    "only_strict": ["--dry-run", "--only", "cpp,bench", "--strict"],
    "only": ["--dry-run", "--only=cpp"],
    "second": ["--dry-run", "--second", "--workers", "2"],
}


@pytest.fixture(scope="module")
def dry_runs(tmp_path_factory):
    """Every scenario, all at once (they mostly wait): {name: (exit status, output, logs)}."""
    root = tmp_path_factory.mktemp("gpu_check")
    running = {name: (root / name, subprocess.Popen(
        [sys.executable, str(GPU_CHECK), *args, "--logs", str(root / name)], cwd=REPO,
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        for name, args in SCENARIOS.items()}
    outputs = {name: proc.communicate(timeout=180)[0] for name, (_, proc) in running.items()}
    return {name: (proc.returncode, outputs[name], logs)
            for name, (logs, proc) in running.items()}


def test_dry_run_passes_and_ends_with_the_tables(dry_runs):
    rc, output, logs = dry_runs["pass"]
    assert rc == 0, output
    parts = parts_table(output)
    assert list(parts) == FIRST and all(row[0] == "PASS" for row in parts.values()), parts
    assert {p: row[3] for p, row in parts.items()} == {
        p: gpu_check.BY_NAME[p].cases for p in FIRST}, "planned cases in the summary"
    assert output.index("call's plan") < output.index("=== fallback") < output.index("=== cpp")
    assert output.rstrip().endswith("gpu_check: PASSED")
    # Staging ran for real, with the stand-in device_check, and had to strip to fit 1 MiB.
    assert "stripping debug sections" in output and "device_check: yes, given" in output
    assert "payload built against 2.11.0" in (logs / "gpu_check.log").read_text()
    # The kernels' table, the bench's 8 decisive rows (GPT-2 first) and the second call.
    kernels = output.split("=== device_check (the kernels alone")[1]
    assert ("| bf16 | 8192 | 50257 | 768 | uniform | -1 | hot_rows | 55.2 | 60.7 | 0.80x |"
            in kernels)
    assert "| f32 | 1000 |" not in kernels, "untimed rows that passed are left out of the table"
    rows = bench_rows(output)
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        (shape, n, "bfloat16", dist) for shape in ("gpt2", "llama3") for n in ("8192", "65536")
        for dist in ("uniform", "zipf")]
    assert parts["bench"][4].startswith("bench: 8 of 8 rows; ")
    assert parts["cpp"][4] == "3 ran: 2 passed, 1 skipped, 0 failed"  # summed over 4 shards
    assert parts["python"][4].startswith(f"{gpu_check.BY_NAME['python'].cases} passed")
    second = sum(p.limit(4) for p in gpu_check.call_parts(True)) + gpu_check.RESERVE
    assert re.search(rf'run\(command="python3 scripts/gpu_check.py --second --budget {second} '
                     rf'--logs \$OUT \S+", carry=\["\S+"\], timeout_s={second + 30}\)', output)
    # At most 8 files come back from $OUT.
    assert {p.name for p in logs.iterdir()} == {"gpu_check.log", "summary.md", "summary.json",
                                                "cuda_bench.json"}
    summary = json.loads((logs / "summary.json").read_text())
    assert summary["passed"] and [r["part"] for r in summary["results"]] == FIRST
    assert "--second" in summary["second_call"]
    assert len(output.split("=== device_check")[1]) < 12000, "the tail the device returns"


def test_dry_run_reports_failed_parts_and_exits_1(dry_runs):
    rc, output, _ = dry_runs["fail"]
    assert rc == 1, output
    parts = parts_table(output)
    assert parts["fallback"][:1] == ("FAIL (exit 1)",) and parts["fallback"][4] == \
        "FAILED: 1 failures"
    assert parts["cpp"][0] == "FAIL (exit 1)"
    assert parts["cpp"][4] == "3 ran: 1 passed, 1 skipped, 1 failed"
    assert parts["python"][4].startswith(
        f"1 failed, {gpu_check.BY_NAME['python'].cases - 1} passed")
    assert parts["preflight"][4].endswith("WARNING: stale payload (built from other sources)")
    assert all(parts[p][0] == "PASS" for p in ("preflight", "bench", "compile")), \
        "every part runs after a failure"
    assert "| zipf | -1 | baseline | 121.0 | 133.1 | 1.00x | NO |" in output
    assert "[  FAILED  ] Backward.Sums/Cuda_BFloat16" in output
    assert "FAILED tests/python/test_oracle.py::test_forward[cuda]" in output
    assert output.rstrip().endswith("gpu_check: FAILED (fallback cpp python)")


def test_dry_run_kills_a_part_at_its_limit_and_offers_it_to_the_second_call(dry_runs):
    rc, output, logs = dry_runs["timeout"]
    assert rc == 1, output
    parts = parts_table(output)
    status, seconds, limit, _, summary = parts["python"]
    assert status == "TIMEOUT" and limit == 4 and seconds <= limit + 3, "the kill came late"
    assert summary == "killed at the 4 s limit; 1 passed, 0 failed before the kill"
    status, seconds, limit, _, summary = parts["cpp"]  # a shard hangs: every shard's output kept
    assert status == "TIMEOUT" and limit == 3 and seconds <= limit + 3
    assert summary == "killed at the 3 s limit; 2 ran: 1 passed, 1 skipped, 0 failed"
    assert "[ RUN      ] DeviceAssertion.Backward" in (logs / "gpu_check.log").read_text()
    assert parts["bench"][0] == parts["compile"][0] == "PASS", "the parts after it still run"
    redo = [gpu_check.BY_NAME[p] for p in ("preflight", "cpp", "python", "bench_fp32",
                                            "bench_shapes", "compile_rest")]
    budget = sum(p.limit(4) for p in redo) + gpu_check.RESERVE
    assert (f"--second --budget {budget} --only preflight,cpp,python,bench_fp32,bench_shapes,"
            f"compile_rest --logs $OUT") in output and f"timeout_s={budget + 30})" in output


def test_dry_run_without_a_gpu_fails_the_fallback_and_the_preflight(dry_runs):
    rc, output, _ = dry_runs["nogpu"]
    assert rc == 1
    parts = parts_table(output)
    assert parts["fallback"][0] == "FAIL (exit 2)" and "CUDA error" in parts["fallback"][4]
    assert parts["preflight"][0] == "FAIL (exit 1)" and parts["preflight"][4].startswith("no GPU;")
    assert "torch.cuda.is_available() is False" in output


def test_dry_run_parts_that_find_the_budget_spent_fail(dry_runs):
    rc, output, _ = dry_runs["spent"]
    assert rc == 1
    assert [row[0] for row in parts_table(output).values()] == ["NO TIME"] * len(FIRST)


def test_dry_run_only_and_strict(dry_runs):
    rc, output, _ = dry_runs["only_strict"]
    assert rc == 1
    parts = parts_table(output)
    assert [parts[p][0] for p in ("fallback", "preflight", "python", "compile")] == [
        "not selected"] * 4
    assert parts["cpp"][0] == "PASS" and parts["bench"][0] == "FAIL (targets missed)"
    rc, output, _ = dry_runs["only"]
    assert rc == 0, "parts left out by --only do not fail the check"


def test_dry_run_second_call(dry_runs):
    rc, output, logs = dry_runs["second"]
    assert rc == 0, output
    parts = parts_table(output)
    assert list(parts) == SECOND and all(row[0] == "PASS" for row in parts.values())
    assert "second call (optional" not in output
    rows = bench_rows(output)
    assert {(r[0], r[2]) for r in rows} == {("gpt2", "float32"), ("llama3", "float32"),
                                            ("llama", "float32"), ("llama", "bfloat16"),
                                            ("bigvocab", "float32"), ("bigvocab", "bfloat16")}
    assert {"cuda_bench_fp32.json", "cuda_bench_shapes.json"} <= {p.name for p in logs.iterdir()}
    assert "-k 'cuda and compile and not (" in output


@pytest.mark.parametrize("args, message", [
    (["--bogus"], "unrecognized arguments: --bogus"),
    (["--budget", "soon"], "--budget: not a whole number"),
    (["--workers", "0"], "--workers: not a positive whole number"),
    (["--only", "gpu"], "--only: unknown part 'gpu'"),
    (["--dry-run=maybe"], "choose pass, fail, timeout or nogpu"),
    (["/nonexistent/payload"], "no payload or build folder"),
])
def test_bad_arguments_exit_2(args, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        gpu_check.main(args)
    assert exit_.value.code == 2 and message in capsys.readouterr().err


def test_help_describes_every_part(capsys):
    assert gpu_check.main(["--help"]) == 0
    text = capsys.readouterr().out
    for part in FIRST:
        assert re.search(rf"^  {part} ", text, re.M), part
    for part in SECOND[1:]:
        assert part in text


def _gtest_matches(pattern_list, name):
    """GoogleTest's --gtest_filter for positive patterns: '*' and '?' globs joined by ':'."""
    return any(fnmatch.fnmatchcase(name, p) for p in pattern_list.split(":"))


def test_cpp_filter_covers_every_cuda_only_test():
    """A CUDA-only C++ test that the filter misses would never run anywhere: CI has no GPU. Here
    CUDA-only: a TEST_P over the backend axis (its Cuda instance), or a TEST_F/TEST whose fixture
    or body skips without CUDA."""
    cpp_filter = gpu_check.CPP_FILTER
    assert _gtest_matches(cpp_filter, "Backward.Sums/Cuda_BFloat16_Int")
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
    assert not missed, f"CUDA-only C++ tests outside gpu_check.CPP_FILTER: {missed}"


# --- the staging ------------------------------------------------------------------------------

def _fake_build(root, fatbin_bytes=16, debug_bytes=0):
    """A build folder whose library is an ELF file with a .nv_fatbin section of the given size
    (0: none) and a debug section; the test binary is a script."""
    build = root / "build"
    (build / "tests" / "cpp").mkdir(parents=True)
    library = build / "libunit_scaling.so.0.1.0"
    sections = []
    for name, size in ((".nv_fatbin", fatbin_bytes), (".debug_pad", debug_bytes)):
        if size:
            (root / name[1:]).write_bytes(os.urandom(size))  # incompressible, as real ones
            sections += ["--add-section", f"{name}={root / name[1:]}"]
    subprocess.run(["objcopy", *sections, os.path.realpath(shutil.which("true")), str(library)],
                   check=True)
    (build / staging.LIBRARY).symlink_to(library.name)
    (build / staging.GTEST).write_text("#!/bin/sh\necho fake\n")
    (build / staging.GTEST).chmod(0o755)
    return build


def _stage(*args, device_check=None, env=None):
    if device_check is None and "--no-device-check" not in args:  # a stand-in beside the payload
        device_check = Path(args[-1]).parent / "device_check_standin"
        device_check.write_bytes(b"#!/bin/sh\n")
    extra = ["--device-check", str(device_check)] if device_check else []
    return subprocess.run([sys.executable, str(REPO / "scripts" / "stage_gpu_payload.py"),
                           "--python", sys.executable, *extra, *map(str, args)], cwd=REPO,
                          env=env or _env(), capture_output=True, text=True, timeout=120)


needs_reference = pytest.mark.skipif(
    importlib.util.find_spec("unit_scaling") is None
    or importlib.util.find_spec("docstring_parser") is None,
    reason="the staging copies the reference library unit_scaling and docstring_parser from "
           "this Python (requirements-test.txt), which lacks them")


@needs_reference
def test_stage_copies_what_the_check_needs_and_no_symlinks(tmp_path):
    result = _stage(_fake_build(tmp_path), tmp_path / "payload")
    assert result.returncode == 0, result.stderr
    payload = tmp_path / "payload"
    files = {p.relative_to(payload).as_posix() for p in payload.rglob("*") if p.is_file()}
    assert {"MANIFEST", "device_check", staging.LIBRARY, staging.GTEST,
            "pydeps/unit_scaling/__init__.py", "pydeps/docstring_parser/__init__.py"} <= files
    assert not any(p.is_symlink() for p in payload.rglob("*")), "links travel as links only"
    assert not any("__pycache__" in f for f in files)
    manifest = (payload / "MANIFEST").read_text()
    assert "cuda_kernels: yes" in manifest and "stripped: no" in manifest
    assert "device_check: yes (given)" in manifest and " device_check\n" in manifest
    assert re.search(r"^source_state: [0-9a-f]{16}$", manifest, re.M)
    assert "outside the repository" in result.stdout


@needs_reference
@pytest.mark.parametrize("fatbin, debug, device_check, fits", [
    (16, 2 << 20, 16, True),  # debug sections: stripped to fit
    (2 << 20, 0, 16, False),  # kernels: nothing to strip
    (16, 0, 2 << 20, False),  # device_check counts
])
def test_stage_size_limit_strips_then_fails(tmp_path, fatbin, debug, device_check, fits):
    (tmp_path / "dc").write_bytes(os.urandom(device_check))
    result = _stage("--limit-mib", 1, _fake_build(tmp_path, fatbin, debug), tmp_path / "payload",
                    device_check=tmp_path / "dc")
    if fits:
        assert result.returncode == 0, result.stdout + result.stderr
        assert "stripped: yes" in (tmp_path / "payload" / "MANIFEST").read_text()
        assert (tmp_path / "payload" / staging.LIBRARY).stat().st_size < 1 << 20
    else:
        assert result.returncode == 1 and "over the limit (1 MiB for the payload" in result.stderr


@needs_reference
def test_stage_refuses_a_library_without_cuda_kernels(tmp_path):
    build = _fake_build(tmp_path, fatbin_bytes=0)
    result = _stage(build, tmp_path / "payload")
    assert result.returncode == 2 and "holds no CUDA kernels" in result.stderr
    result = _stage("--allow-no-cuda", build, tmp_path / "payload")
    assert result.returncode == 0, result.stderr
    assert "cuda_kernels: no" in (tmp_path / "payload" / "MANIFEST").read_text()


@needs_reference
def test_stage_without_nvcc_warns_and_stages_no_device_check(tmp_path):
    result = _stage("--no-device-check", _fake_build(tmp_path), tmp_path / "payload")
    assert result.returncode == 0 and "device_check: no (--no-device-check)" in (
        tmp_path / "payload" / "MANIFEST").read_text()
    result = subprocess.run([sys.executable, str(REPO / "scripts" / "stage_gpu_payload.py"),
                             "--python", sys.executable, str(tmp_path / "build"),
                             str(tmp_path / "payload")], cwd=REPO, env=_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "WARNING: device_check not staged (no /nonexistent/nvcc here)" in result.stderr


def test_device_check_is_built_by_its_header_command():
    command = staging.device_check_command(Path("/out/device_check"))
    assert command[0] == "nvcc" and "-arch=sm_90" in command and "-O3" in command
    assert command[command.index("-o") + 1] == "/out/device_check"
    assert staging.DEVICE_CHECK_SOURCE in command and "*" not in " ".join(command)
    assert all((REPO / w).is_file() for w in command if w.endswith((".cu", ".cpp")))
    for cu in (REPO / "src" / "kernels" / "cuda").glob("*.cu"):
        assert cu.relative_to(REPO).as_posix() in command, "the header's glob, expanded"


def test_stage_builds_nothing_and_names_what_is_missing(tmp_path):
    result = _stage(tmp_path, tmp_path / "payload")
    assert result.returncode == 2
    assert "libunit_scaling.so.0 is missing: build it first" in result.stderr
    assert not (tmp_path / "payload").exists()


@needs_reference
def test_stage_never_replaces_a_folder_it_did_not_make(tmp_path):
    build = _fake_build(tmp_path)
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    result = _stage(build, tmp_path / "mine")
    assert result.returncode == 2 and "not replacing it" in result.stderr
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    assert _stage(build, tmp_path / "payload").returncode == 0
    assert _stage(build, tmp_path / "payload").returncode == 0, "its own payload is replaced"


@needs_reference
def test_stage_inside_the_repository_prints_the_run_call(tmp_path):
    name = f"build-gpu-payload-test-{os.getpid()}"  # ignored by git's /build*/
    try:
        (tmp_path / "device_check").write_bytes(b"#!/bin/sh\n")
        result = _stage(_fake_build(tmp_path), REPO / name,
                        device_check=tmp_path / "device_check")
        assert result.returncode == 0, result.stderr
        assert (f'run(command="python3 scripts/gpu_check.py --logs $OUT {name}", '
                f'carry=["{name}"], timeout_s=480)') in result.stdout
        assert "not ignored by git" not in result.stderr
    finally:
        shutil.rmtree(REPO / name, ignore_errors=True)


@needs_reference
def test_real_build_payload_fits_the_device_limit(tmp_path):
    build = _real_build()
    if build is None:
        pytest.skip("no finished build of the C++ suite here (scripts/test.sh makes build/)")
    if not staging.has_cuda_kernels(build / staging.LIBRARY):
        pytest.skip(f"{build} was built without the CUDA backend (no nvcc): its payload would "
                    "not be the one that travels")
    device_check = staging.DEVICE_CHECK_BUILD
    if not device_check.is_file():  # as large as the real one (2.7 MiB, 2026-12-07)
        device_check = tmp_path / "device_check"
        device_check.write_bytes(os.urandom(3 << 20))
    result = _stage(build, tmp_path / "payload", device_check=device_check)
    assert result.returncode == 0, result.stdout + result.stderr
    size = sum(p.stat().st_size for p in (tmp_path / "payload").rglob("*") if p.is_file())
    assert size + staging.tree_bytes() <= staging.DEVICE_LIMIT_MIB << 20


# --- the bench, as the check calls it -----------------------------------------------------------

def _bench(*args):
    return subprocess.run([sys.executable, str(BENCH), *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def test_bench_dry_run_with_the_checks_flags_writes_what_summarize_reads(tmp_path):
    out = tmp_path / "bench.json"
    result = _bench("--dry-run", "--quick", *gpu_check.BY_NAME["bench"].args, "--out", out)
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert data["meta"]["planned"] == gpu_check.BY_NAME["bench"].cases and data["meta"]["complete"]
    summary = _bench("--summarize", out)
    assert summary.returncode == 0 and summary.stdout == result.stdout
    assert _bench("--summarize", out, "--strict").returncode == 3  # synthetic misses
    # A bench killed part-way: its rows so far, the verdict says so; a row that raised; junk.
    data["meta"]["complete"] = False
    data["rows"] = data["rows"][:2] + [dict(data["rows"][0], check="ERROR", error="OOM")]
    for key in ("fwd_ours_ms", "bwd_ours_ms"):
        data["rows"][-1].pop(key)
    out.write_text(json.dumps(data))
    result = _bench("--summarize", out)
    assert result.returncode == 1 and "(stopped early)" in result.stdout
    assert "; 1 fail the check" in result.stdout.splitlines()[-1]
    out.write_text("{not json")
    result = _bench("--summarize", out)
    assert result.returncode == 1 and "bench: cannot read" in result.stdout


@pytest.mark.parametrize("args, message", [
    (["--shapes", "gpt5"], "--shapes: unknown ['gpt5']"),
    (["--tokens", "8192,0"], "--tokens: expected positive whole numbers"),
    (["--dtypes", "float8"], "--dtypes: unknown"),
])
def test_bench_rejects_bad_arguments(args, message):
    result = _bench(*args)
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_bench_without_a_gpu_says_so():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible: the bench would run for real")
    result = _bench("--quick", "--shapes", "gpt2")
    assert result.returncode == 2 and "no CUDA device visible" in result.stderr
