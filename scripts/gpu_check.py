#!/usr/bin/env python3
"""The GPU check: one device call on a machine with a CUDA GPU and torch 2.11 (run by its
python3; standard library only), from a payload staged by scripts/stage_gpu_payload.py. It
prints the counted plan first, runs the parts of the call each under its own time limit inside
one budget, and prints last the kernel table of device_check, the bench table and a table of the
parts (the device's reply keeps only the last 12,000 characters of output).

The first call (default; 400 s planned, budget 450 s, so a run with timeout_s=480 ends inside 8
minutes) runs, in this order:
  fallback    device_check, the LibTorch-free kernel check (tests/cuda_build/device_check.cu),
              with no arguments: its default table; first, before anything that needs the
              library, so the window measures the kernels even when the library fails to load
  preflight   GPU visible, torch release = the build's, the library loads and registers its
              CUDA kernels, the binaries' libraries resolve, the reference library imports
  cpp         the C++ suite's CUDA tests (CPP_FILTER), as --workers GoogleTest shards
  python      the Python suite's CUDA cases without torch.compile (-k "cuda and not compile")
  bench       bench/cuda_bench.py's decisive rows: GPT-2 then Llama-3, bf16, N = 8192 and
              65536, uniform and Zipf (each row written to the JSON as it finishes)
  compile     the cold compiles that prove torch.compile works on CUDA: dynamic=True and
              mode="reduce-overhead", last
The second call (--second, optional; the first prints its exact form last) runs preflight,
bench_fp32 (the same rows in float32), bench_shapes (Llama and big-vocab, both dtypes) and
compile_rest (every other compile case), plus any part of the first call that timed out.

Usage: python3 scripts/gpu_check.py [options] [DIR]
  DIR            the payload (default build-gpu-payload when it exists, else build), or a build
                 folder with its layout (libunit_scaling.so.0, tests/cpp/unit_scaling_tests)
  --second       the second call's parts
  --only P,...   only these parts (any call's names above)
  --budget S     total seconds (default 450); each part's limit is cut to what is left
  --workers N    processes sharing the GPU (default 4): C++ shards, pytest-xdist workers
  --strict       a missed performance target fails the bench
  --verbose      print each part's whole output when it ends (always: the log)
  --logs DIR     gpu_check.log, summary.md, summary.json and the bench JSON (default DIR/gpu_check,
                 or GPU_CHECK_LOGS; on the device $OUT: at most 8 files come back)
  --plan         print the plan and exit (no GPU, no payload)
  --count        recount every part's cases here (pytest --collect-only with the same -k, the C++
                 test list with the same filter, the bench's --dry-run rows) against the plan
  --dry-run[=pass|fail|timeout|nogpu]  no GPU: a fake build staged into a temporary folder, every
                 part through stand-ins (scripts/gpu_check_dry.py) with short limits
Exit status: 0 every selected part passed; 1 a part failed, timed out or found no time left (a
missed target only with --strict); 2 bad arguments or no payload.
Environment: PYTHON (the parts' python, default this one); UNIT_SCALING_CPP_EXPECT_CUDA_KERNELS
(default 1).
"""
import argparse
import contextlib
import dataclasses
import importlib.util
import json
import math
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import stage_gpu_payload as staging  # noqa: E402

REPO = staging.REPO
# The C++ tests that need a GPU: the Cuda instances of the backend axis (tests/cpp/backends.h),
# suites named Cuda*, and the CUDA-only fixtures off the axis (the device-assertion death tests).
CPP_FILTER = "*/Cuda*:*Cuda*.*:DeviceAssertion.*"
FIRST_COMPILES = "test_dynamic_true or test_compile_reduce_overhead_equals_eager"
BENCH_MAIN = ["--shapes", "gpt2,llama3", "--tokens", "8192,65536"]
BUDGET, RESERVE, MIN_PART, KILL_AFTER = 450, 10, 5, 3


@dataclasses.dataclass(frozen=True)
class Part:
    """A part and its counted plan: `work` is ((cases, seconds per case, what), ...), spread over
    the workers when `parallel`; `startup` is paid once per process (in parallel); the limit is
    the estimate times `margin`, rounded up to 5 s."""
    name: str
    call: int  # 1, 2, or 0: both calls
    kind: str  # fallback, preflight, gtest, pytest, bench
    args: tuple
    work: tuple
    startup: float
    basis: str
    parallel: bool = False
    margin: float = 1.5

    @property
    def cases(self):
        return sum(n for n, _, _ in self.work)

    def workers(self, workers):
        return max(1, min(workers, self.cases)) if self.parallel else 1

    def estimate(self, workers):
        return self.startup + sum(n * s for n, s, _ in self.work) / self.workers(workers)

    def limit(self, workers):
        return 5 * math.ceil(self.margin * self.estimate(workers) / 5)

    def recounted(self, cases):
        """The same part with `cases` cases (the difference in its first kind of case)."""
        (n, s, what), *rest = self.work
        return dataclasses.replace(self, work=((n + cases - self.cases, s, what), *rest))


# Counted on 2026-12-07 (`--count` recounts; tests/python/test_gpu_check.py checks the plan).
# Per-case seconds: measured here where the work is host work, else justified in `basis`.
PARTS = (
    Part("fallback", 1, "fallback", (), ((10, 4, "timed case"), (48, 0.15, "small case")), 2,
         "device_check.cu's default table: 10 timed bf16 cases (GPT-2 N = 8192, 65536, 131072; "
         "Llama-3 N = 8192, 65536; uniform and Zipf) and 18 small backward cases, each in 5 "
         "variants, and 30 renorm cases; host work per timed case: inputs hashed (3.6 ns a "
         "value here: 3.3 s for all), the CPU reference on the host's cores, 10 read-backs and "
         "compares of up to 1 GB, 2 x 25 timed calls per variant; margin 1.25", margin=1.25),
    Part("preflight", 0, "preflight", (), ((1, 20, "check"),), 0,
         "cold torch import (2.4 s warm here; a fresh machine's page cache is cold), CUDA "
         "context 1-3 s, the library and the reference library"),
    Part("cpp", 1, "gtest", (CPP_FILTER,), ((86, 0.25, "case"), (5, 6, "death test")), 5,
         "gtest --gtest_list_tests with the filter; CPU instances take 0.04 s here (bar "
         "LargeSizes, made on the device there), CUDA adds launches and copies: 0.25 s; each "
         "death test re-executes the binary (libtorch 0.7 s here + CUDA context)", parallel=True),
    Part("python", 1, "pytest", ("cuda and not compile",),
         ((376, 0.35, "case"), (6, 8, "subprocess case")), 12,
         "pytest --collect-only; their CPU instances take 0.11 s each here, x3 for launches, "
         "copies and syncs, +15% for the variant cases at N = 131072 (a CPU reference each); "
         "6 cases start a python each (torch 2.4 s + CUDA context); startup: torch, CUDA "
         "context and collection (3-8 s here) per worker", parallel=True),
    Part("bench", 1, "bench", (*BENCH_MAIN, "--dtypes", "bfloat16"), ((8, 6, "row"),), 15,
         "rows of the bench's --dry-run with these flags; per row a 1-3 GB table and inputs, a "
         "float64 check, 6+ timed functions x 21 calls, 5 backward variants (each checked bit "
         "for bit, timed, launches counted), a graph capture and a profiler run, and the renorm "
         "rows (bench/cuda_bench.py prints its own estimate); startup: torch, the 1 GiB copy "
         "bandwidth, the read-back per shape"),
    Part("compile", 1, "pytest", (f"cuda and compile and ({FIRST_COMPILES})",),
         ((2, 10, "case"),), 42,
         "startup: a cold Inductor/Triton compile per worker (20-40 s: the first CPU compile "
         "in a process took 23 s here) + torch and collection; later compiles 5 s here, x2",
         parallel=True),
    Part("bench_fp32", 2, "bench", (*BENCH_MAIN, "--dtypes", "float32"), ((8, 5, "row"),), 15,
         "the bench rows in float32: twice the bytes (4 GB of rotated inputs at Llama-3 N=65536)"),
    Part("bench_shapes", 2, "bench", ("--shapes", "llama,bigvocab"), ((8, 4, "row"),), 15,
         "Llama and big vocab at their own N, both dtypes and distributions"),
    Part("compile_rest", 2, "pytest", (f"cuda and compile and not ({FIRST_COMPILES})",),
         ((10, 10, "case"),), 42, "as compile", parallel=True),
)
BY_NAME = {p.name: p for p in PARTS}
# --dry-run: short limits; the timeout scenario's stand-ins sleep past those of cpp and python.
DRY_LIMITS = dict(fallback=10, preflight=20, cpp=3, python=4, bench=30, compile=10,
                  bench_fp32=30, bench_shapes=30, compile_rest=10)
# The lines of a failed part's output that say why (else its last 15 lines).
WHY = {"gtest": r"^\[ *FAILED *\]|Failure|error", "pytest": r"^(FAILED|ERROR) |^E ",
       "fallback": r"\bNO\b|error|FAIL", "preflight": r"FAIL|WARNING|Error", "bench": r"$^"}
# test_torch_version.py reads the installed package's _build_info (here the source tree runs
# against the payload's library); test_gpu_check.py is CI's test of this script.
PYTEST = ["-m", "pytest", "-p", "no:cacheprovider", "--ignore=tests/python/test_torch_version.py",
          "--ignore=tests/python/test_gpu_check.py"]


def call_parts(second):
    return [p for p in PARTS if p.call in (0, 2 if second else 1)]


def plan(parts, workers, budget, limits=None, reserve=RESERVE):
    """The plan table: part, cases, per-case seconds, workers, startup, estimate, limit."""
    limits = {p.name: (limits or {}).get(p.name, p.limit(workers)) for p in parts}
    rows = ["| part | cases | per case s | workers | startup s | estimate s | limit s |",
            "|---|---|---|---|---|---|---|"]
    rows += [f"| {p.name} | {p.cases} | {' + '.join(f'{n}x{s:g}' for n, s, _ in p.work)} | "
             f"{p.workers(workers)} | {p.startup:g} | {p.estimate(workers):.0f} | "
             f"{limits[p.name]} |" for p in parts]
    total = sum(limits.values())
    rows.append(f"| total | {sum(p.cases for p in parts)} | | | | "
                f"{sum(p.estimate(workers) for p in parts):.0f} | {total} (+{reserve} s summary "
                f"= {total + reserve} of the {budget} s budget) |")
    if total + reserve > budget:
        rows.append("WARNING: the limits exceed the budget: the last parts get what is left")
    return "\n".join(rows)


def print_plan(parts, workers, budget, second=False, dry=False):
    print(f"gpu_check: the {'second' if second else 'first'} call's plan ({workers} workers"
          f"{'; dry run: short limits' if dry else ''}):\n"
          f"{plan(parts, workers, budget, DRY_LIMITS if dry else None, 2 if dry else RESERVE)}\n"
          "basis (cases counted on 2026-12-07; per-case seconds):")
    for p in parts:
        print(f"  {p.name}: {p.basis}")
    if not second:
        rest = call_parts(True)
        print(f"second call (--second, optional): {', '.join(p.name for p in rest)}: "
              f"{sum(p.limit(workers) for p in rest)} s of limits")
    sys.stdout.flush()


def environment(payload, python, workers, scratch, dry_run):
    """The parts' environment. Runtime libraries: the payload, torch/lib and the CUDA 13 wheel's
    runtime (the binaries' RPATHs name the build machine's folders), found without importing
    torch; compile caches in scratch space (cold, as on a fresh machine)."""
    code = ("import importlib.util as u, os\nt, n = u.find_spec('torch'), u.find_spec('nvidia')\n"
            "print(os.path.join(list(t.submodule_search_locations)[0], 'lib') if t else '')\n"
            "print(next((os.path.join(p, 'cu13', 'lib') for p in (n.submodule_search_locations "
            "if n else []) if os.path.isdir(os.path.join(p, 'cu13', 'lib'))), ''))\n")
    torch_lib, cuda_lib = (subprocess.run([python, "-c", code], capture_output=True, text=True,
                                          timeout=60).stdout.splitlines() + ["", ""])[:2]
    if not cuda_lib and not dry_run and os.path.isdir("/usr/local/cuda/lib64"):
        cuda_lib = "/usr/local/cuda/lib64"  # the toolkit's: the same CUDA 13
    env = dict(os.environ)
    join = lambda *paths: ":".join(filter(None, paths))  # noqa: E731
    env.update(LD_LIBRARY_PATH=join(str(payload), torch_lib, cuda_lib, env.get("LD_LIBRARY_PATH")),
               PYTHONPATH=join(str(REPO / "python"), env.get("PYTHONPATH"),
                               str(payload / "pydeps") if (payload / "pydeps").is_dir() else ""),
               UNIT_SCALING_CPP_LIBRARY=str(payload / staging.LIBRARY),
               PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1",
               OMP_NUM_THREADS=env.get("OMP_NUM_THREADS",
                                       str(max(1, (os.cpu_count() or 4) // workers))),
               TORCHINDUCTOR_CACHE_DIR=str(scratch / "inductor"),
               TRITON_CACHE_DIR=str(scratch / "triton"), GPU_CHECK_DRY_RUN=dry_run)
    env.setdefault("UNIT_SCALING_CPP_EXPECT_CUDA_KERNELS", "1")
    return env


def run_processes(commands, limit, outputs, env, kill_after):
    """Runs the commands at once, each in its own session with its output in its file; stops
    them all (TERM, then KILL) at the limit. Returns (exit statuses, timed out)."""
    procs = []
    for (argv, extra), out in zip(commands, outputs):
        with open(out, "w") as f:
            procs.append(subprocess.Popen(argv, stdout=f, stderr=subprocess.STDOUT, cwd=REPO,
                                          env={**env, **extra}, start_new_session=True))
    deadline = time.monotonic() + limit
    try:
        for proc in procs:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        return [proc.returncode for proc in procs], False
    except subprocess.TimeoutExpired:
        for sig, grace in ((signal.SIGTERM, kill_after), (signal.SIGKILL, 5)):
            for proc in procs:
                if proc.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, sig)
            end = time.monotonic() + grace
            for proc in procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=max(0.0, end - time.monotonic()))
        return [proc.returncode for proc in procs], True


def count(pattern, text):
    return sum(int(m) for m in re.findall(pattern, text, re.M))


def gtest_note(text):
    """GoogleTest's closing lines, summed over the shards."""
    if not re.search(r"^\[=+\] \d+ tests? from .* ran", text, re.M):
        return "no GoogleTest summary"
    ran = count(r"^\[=+\] (\d+) tests? from .* ran", text)
    passed, skipped = (count(rf"^\[ *{word} *\] (\d+) tests?[.,]", text)
                       for word in ("PASSED", "SKIPPED"))
    failed = len(set(re.findall(r"^\[ *FAILED *\] ([A-Za-z_]\S*)", text, re.M)))
    return f"{ran} ran: {passed} passed, {skipped} skipped, {failed} failed"


def pytest_note(text, killed):
    """pytest's summary line; after a kill, the verbose lines counted."""
    if killed:
        passed, failed = (len(re.findall(rf"\b{word}\b", text))
                          for word in ("PASSED", "(?:FAILED|ERROR)"))
        return f"{passed} passed, {failed} failed before the kill"
    lines = re.findall(r"^=*\s*(\d+ (?:passed|failed|skipped|errors?|deselected).*?)\s*=*$", text,
                       re.M)
    return lines[-1] if lines else "no pytest summary"


def kernel_table(text, width=6000):
    """device_check's table (header, timed rows, rows with a failure), its lines that say
    something failed or differed, and its verdict: the last `width` characters."""
    keep, timed = [], None
    for line in text.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if cells[0] == "dtype":  # the header says which column holds the timed rows' time
                timed = cells.index("graph us") if "graph us" in cells else None
            if cells[0] == "dtype" or set(line) <= set("|-") or "NO" in cells or (
                    timed is not None and len(cells) > timed
                    and re.fullmatch(r"[0-9.]+", cells[timed])):
                keep.append(line)
        elif re.search(r"\bNO\b|error|FAIL|PASSED|^device_check on|: [1-9][0-9]* elements differ",
                       line):
            keep.append(line)
    out = "\n".join(keep)
    return out if len(out) <= width else "...\n" + out[-width:]


class Check:
    """One call: runs parts, keeps their results and the tables printed last."""

    def __init__(self, args, payload, python, logs, scratch, env, started):
        self.args, self.payload, self.python, self.logs = args, payload, python, logs
        self.scratch, self.env, self.dry = scratch, env, bool(args.dry_run)
        self.start, self.deadline = started, started + args.budget  # the dry staging counts too
        self.reserve, self.min_part, self.kill_after = ((2, 1, 1) if self.dry else
                                                        (RESERVE, MIN_PART, KILL_AFTER))
        self.results, self.tables = [], []
        self.log = open(logs / "gpu_check.log", "w")

    def has_module(self, name):
        return subprocess.run([self.python, "-c", f"import {name}"], capture_output=True,
                              env=self.env, timeout=60).returncode == 0

    def bench_json(self, part):
        suffix = "" if part.name == "bench" else "_" + part.name.split("_", 1)[1]
        return self.logs / f"cuda_bench{suffix}.json"

    def commands(self, part):
        """[(argv, extra environment), ...]: one per process."""
        workers = part.workers(self.args.workers)
        line_buffered = ["stdbuf", "-oL"] if shutil.which("stdbuf") else []  # kept if killed
        if part.kind == "fallback":
            return [([*line_buffered, str(self.payload / staging.DEVICE_CHECK)], {})]
        if part.kind == "preflight":
            return [([self.python, str(Path(__file__).resolve()), "--run-preflight",
                      str(self.payload)], {})]
        if part.kind == "gtest":  # shards: GoogleTest's own (death-test children ignore them)
            argv = [*line_buffered, str(self.payload / staging.GTEST),
                    f"--gtest_filter={part.args[0]}", "--gtest_brief=1"]
            return [(argv, {"GTEST_TOTAL_SHARDS": str(workers), "GTEST_SHARD_INDEX": str(i)}
                     if workers > 1 else {}) for i in range(workers)]
        if part.kind == "pytest":
            argv = [self.python, *PYTEST, "-v", "-rfEs", "--durations=10", "tests/python", "-k",
                    part.args[0]]
            if workers > 1 and self.has_module("xdist"):
                argv += ["-n", str(workers)]
            if self.has_module("pytest_timeout"):  # one hung test fails alone
                argv.append(f"--timeout={60 if part.name == 'python' else 120}")
            return [(argv, {"GPU_CHECK_PLANNED": str(part.cases)})]
        return [([self.python, "bench/cuda_bench.py", "--quick", *part.args, "--out",
                  str(self.bench_json(part))] + (["--dry-run"] if self.dry else []), {})]

    def run_part(self, part):
        want = DRY_LIMITS[part.name] if self.dry else part.limit(self.args.workers)
        limit = min(want, int(self.deadline - time.monotonic() - self.reserve - self.kill_after))
        result = dict(part=part.name, planned=part.cases, limit=max(limit, 0), seconds=0)
        if part.kind == "fallback" and not (self.payload / staging.DEVICE_CHECK).is_file():
            return self.record(result, "SKIP", "device_check not staged (no nvcc where staged)")
        if limit < self.min_part:
            return self.record(result, "NO TIME",
                               f"the {self.args.budget} s budget was spent before it could start")
        commands = self.commands(part)
        print(f"=== {part.name} (limit {limit} s): {shlex.join(commands[0][0])}", flush=True)
        outputs = [self.scratch / f"{part.name}.{i}" for i in range(len(commands))]
        if part.kind == "bench":
            self.bench_json(part).unlink(missing_ok=True)
        started = time.monotonic()
        statuses, timed_out = run_processes(commands, limit, outputs, {
            **self.env, "GPU_CHECK_PART": part.name}, self.kill_after)
        result["seconds"] = round(time.monotonic() - started)
        texts = [o.read_text(errors="replace") for o in outputs]
        text = "".join(f"--- shard {i} of {len(texts)}\n{t}" if len(texts) > 1 else t
                       for i, t in enumerate(texts))
        self.log.write(f"===== {part.name}: {shlex.join(commands[0][0])}\n{text}\n")
        self.log.flush()
        if self.args.verbose:
            print(text)
        rc = next((s for s in statuses if s), 0)
        status = "TIMEOUT" if timed_out else "PASS" if rc == 0 else f"FAIL (exit {rc})"
        if part.kind == "fallback":
            verdicts = re.findall(r"^(?:PASSED|FAILED).*$", text, re.M)
            note = verdicts[-1] if verdicts else (text.strip().splitlines() or ["no output"])[-1]
            self.tables.append(f"=== device_check (the kernels alone, no LibTorch)\n"
                               f"{kernel_table(text)}")
        elif part.kind == "preflight":
            note = (re.findall(r"^preflight: (.*)$", text, re.M) or ["no preflight line"])[-1]
        elif part.kind == "gtest":
            note = gtest_note(text)
            if status == "PASS" and not re.search(r"^\[ *PASSED *\] [1-9]", text, re.M):
                status = "FAIL (no test passed)"  # a part that ran nothing checked nothing
        elif part.kind == "pytest":
            note = pytest_note(text, timed_out)
            if status == "PASS" and not re.search(r"[1-9]\d* passed", note):
                status = "FAIL (none passed)"
        else:
            note, bench_rc = self.bench_summary(part)
            if status == "PASS" and bench_rc:
                status = "FAIL (targets missed)" if bench_rc == 3 else f"FAIL (summary {bench_rc})"
        self.record(result, status, f"killed at the {limit} s limit; {note}" if timed_out
                    else note)
        if status != "PASS":  # the lines that say why, else the last ones
            why = [line for line in text.splitlines() if re.search(WHY[part.kind], line)]
            print("\n".join("    " + line for line in (why[:20] or text.splitlines()[-15:])))
        return result

    def bench_summary(self, part):
        """The bench's table from its JSON (also after a kill: it writes row by row)."""
        path = self.bench_json(part)
        if not path.is_file() or not path.stat().st_size:
            self.tables.append(f"=== {part.name}: no results (no {path.name})")
            return f"no {path.name}", 0
        result = subprocess.run(
            [self.python, "bench/cuda_bench.py", "--summarize", str(path)]
            + (["--strict"] if self.args.strict else []), cwd=REPO, env=self.env,
            capture_output=True, text=True, timeout=120)
        table = (result.stdout + result.stderr).rstrip()
        self.tables.append(f"=== {part.name} (bench/cuda_bench.py {' '.join(part.args)}; "
                           f"ratios against docs/PERFORMANCE.md's targets)\n{table}")
        return (table.splitlines() or [""])[-1], result.returncode

    def record(self, result, status, note):
        result.update(status=status, note=note)
        self.results.append(result)
        print(f"--- {result['part']}: {status} in {result['seconds']} s: {note}", flush=True)
        return result

    def second_call(self):
        """The exact second call: its own parts, plus the first call's that did not finish,
        with a budget of their limits (so it asks for no more device time than it plans)."""
        redo = {r["part"] for r in self.results if r["status"] in ("TIMEOUT", "NO TIME")}
        parts = [p for p in PARTS if p in call_parts(True) or p.name in redo]
        budget = sum(p.limit(self.args.workers) for p in parts) + RESERVE
        command = f"python3 scripts/gpu_check.py --second --budget {budget}"
        if redo:
            command += " --only " + ",".join(p.name for p in parts)
        if self.args.workers != 4:
            command += f" --workers {self.args.workers}"
        payload = Path(self.args.folder or self.payload).resolve()
        payload = payload.relative_to(REPO).as_posix() if payload.is_relative_to(REPO) else payload
        return (f'run(command="{command} --logs $OUT {payload}", carry=["{payload}"], '
                f"timeout_s={budget + 30})")

    def summary(self, second):
        """The tables, the parts' table and the verdict, printed last; summary.md/.json."""
        elapsed = round(time.monotonic() - self.start)
        failed = [r["part"] for r in self.results if r["status"] not in ("PASS", "SKIP",
                                                                         "not selected")]
        lines = [""] + [t + "\n" for t in self.tables] + [
            f"=== gpu_check parts: {elapsed} s of a {self.args.budget} s budget; logs in "
            f"{self.logs}", "| part | status | seconds | limit s | cases | summary |",
            "|---|---|---|---|---|---|"] + [
            f"| {r['part']} | {r['status']} | {r['seconds']} | {r['limit']} | {r['planned']} | "
            f"{r['note']} |" for r in self.results]
        if not second:
            lines += ["second call (optional; what this one left out):", "  " + self.second_call()]
        lines.append(f"gpu_check: FAILED ({' '.join(failed)})" if failed else "gpu_check: PASSED")
        print("\n".join(lines))
        (self.logs / "summary.md").write_text("\n".join(lines) + "\n")
        workers = self.args.workers
        (self.logs / "summary.json").write_text(json.dumps({
            "call": 2 if second else 1, "budget": self.args.budget, "seconds": elapsed,
            "workers": workers, "dry_run": self.args.dry_run or None, "passed": not failed,
            "plan": [dict(part=p.name, cases=p.cases, estimate=round(p.estimate(workers)),
                          limit=p.limit(workers), basis=p.basis) for p in call_parts(second)],
            "results": self.results, "second_call": None if second else self.second_call()},
            indent=1))
        return 1 if failed else 0


# --- the preflight (runs in the parts' python: python3 scripts/gpu_check.py --run-preflight) ---

def preflight(payload):
    dry = os.environ.get("GPU_CHECK_DRY_RUN")
    fails = []
    manifest = payload / "MANIFEST"
    values = dict(re.findall(r"^(\w+): (.*)$", manifest.read_text(), re.M)
                  if manifest.is_file() else [])
    if not dry:
        try:
            print("nvidia-smi:", subprocess.run(
                ["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                 "--format=csv,noheader"], capture_output=True, text=True, timeout=30).stdout)
        except (OSError, subprocess.SubprocessError) as error:
            print("nvidia-smi: not available:", error)
        for name in (staging.LIBRARY, staging.GTEST, staging.DEVICE_CHECK):
            if (payload / name).is_file():  # their libraries must all resolve here
                ldd = subprocess.run(["ldd", str(payload / name)], capture_output=True, text=True)
                missing = [line.strip() for line in ldd.stdout.splitlines() if "not found" in line]
                if missing:
                    fails.append(f"unresolved libraries of {name}: {missing}")
    print(f"payload: {payload}\n" + ("\n".join(manifest.read_text().splitlines()[:9])
                                     if values else "no MANIFEST (a build folder)"))
    here = staging.source_state()  # a payload built from other sources tests the wrong code
    stale = values.get("source_state") not in (None, here)
    if stale:
        print(f"PREFLIGHT WARNING: the payload was built from other sources than this tree's "
              f"(source_state {values['source_state']}, here {here}): restage")
    import torch
    built = values.get("torch_release", "unknown")
    print("torch", torch.__version__, "; payload built against", built)
    if built != "unknown" and torch.__version__.split("+")[0] != built:
        fails.append(f"torch {torch.__version__} here, the payload was built against {built} "
                     "(LibTorch has no stable C++ ABI): rebuild against this release")
    device = "no GPU"
    if torch.cuda.is_available():
        device = torch.cuda.get_device_name()
        print("device", device, "capability", torch.cuda.get_device_capability())
    else:
        fails.append("torch.cuda.is_available() is False: every CUDA test would skip")
    kernels = "library not loaded (dry run)"
    if not dry:
        try:
            import unit_scaling_cpp  # noqa: F401  (loads the payload's library)
        except Exception as error:  # noqa: BLE001  (reported; the other checks still run)
            kernels = f"the library fails to load: {type(error).__name__}: {error}"
            fails.append(kernels)
        else:
            missing = [n for n in ("embedding_lookup", "embedding_backward",
                                   "_scaled_embedding_backward", "embedding_renorm_")
                       if not torch._C._dispatch_has_kernel_for_dispatch_key(
                           f"unit_scaling::{n}", "CUDA")]
            kernels = f"no CUDA kernel for {missing}" if missing else "our CUDA kernels registered"
            if missing and os.environ.get("UNIT_SCALING_CPP_EXPECT_CUDA_KERNELS") == "1":
                fails.append(kernels)
    try:
        if dry:  # the stand-in torch cannot run it: find it only
            if importlib.util.find_spec("unit_scaling") is None:
                raise ImportError("No module named 'unit_scaling'")
        else:
            import unit_scaling.functional  # noqa: F401
        reference = "reference library importable"
    except ImportError as error:
        reference = f"reference library missing ({error})"
        fails.append(reference + ": the oracle tests and the bench's ref column need it")
    for f in fails:
        print("PREFLIGHT FAIL:", f)
    print(f"preflight: {device}; torch {torch.__version__}; {kernels}; {reference}"
          f"{'; WARNING: stale payload (built from other sources)' if stale else ''}")
    return 1 if fails else 0


# --- counting here --------------------------------------------------------------------------

def k_matches(expression, nodeid):
    """pytest's -k on a node id: each name matches as a case-insensitive substring of it."""
    return eval(re.sub(r"[\w\[\]./:-]+", lambda m: m.group() if m.group() in (
        "and", "or", "not") else str(m.group().lower() in nodeid.lower()), expression))


def recount(payload, python, env):
    """{part: cases} counted here as the plan counts them: one pytest --collect-only (the node
    ids matched against each part's -k), the C++ test list with the filter, the bench's
    --dry-run rows; None where it cannot be counted."""
    with tempfile.TemporaryDirectory(prefix="gpu_check_count.") as out:
        commands = {"pytest": [python, *PYTEST, "--collect-only", "-q", "tests/python", "-k",
                               "cuda"]}
        for p in PARTS:
            if p.kind == "gtest":
                commands[p.name] = [str(payload / staging.GTEST), "--gtest_list_tests",
                                    f"--gtest_filter={p.args[0]}"]
            elif p.kind == "bench":
                commands[p.name] = [python, "bench/cuda_bench.py", "--dry-run", "--quick",
                                    *p.args, "--out", f"{out}/{p.name}.json"]
        procs = {name: subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
                 for name, command in commands.items()}
        texts = {name: proc.communicate(timeout=300)[0] for name, proc in procs.items()}
        ok = {name: proc.returncode == 0 for name, proc in procs.items()}
        nodeids = re.findall(r"^(tests/python/\S+::.+)$", texts["pytest"], re.M)
        counted = {"preflight": 1}
        for p in PARTS:
            if p.kind == "pytest":
                counted[p.name] = sum(k_matches(p.args[0], n) for n in nodeids) if ok[
                    "pytest"] else None
            elif p.kind == "gtest":
                counted[p.name] = len(re.findall(r"^  \S", texts[p.name], re.M)) if ok[
                    p.name] else None
            elif p.kind == "bench":
                with contextlib.suppress(OSError, ValueError, KeyError):
                    counted[p.name] = json.loads(Path(f"{out}/{p.name}.json").read_text())[
                        "meta"]["planned"]
                counted.setdefault(p.name, None)
    return counted


# --- main -------------------------------------------------------------------------------------

def die(message):
    print(f"gpu_check: {message}", file=sys.stderr)
    sys.exit(2)


def parse_args(argv):
    parser = argparse.ArgumentParser(add_help=False)
    parser.error = lambda message: die(f"{message} (see --help)")
    parser.add_argument("folder", nargs="?")
    for flag in ("--second", "--strict", "--verbose", "--plan", "--count", "--run-preflight",
                 "--help"):
        parser.add_argument(flag, action="store_true")
    parser.add_argument("--only", default="")
    parser.add_argument("--budget")
    parser.add_argument("--workers", default="4")
    parser.add_argument("--logs", default=os.environ.get("GPU_CHECK_LOGS"))
    parser.add_argument("--dry-run", nargs="?", const="pass", default="")
    args = parser.parse_args(argv)
    if args.dry_run not in ("", "pass", "fail", "timeout", "nogpu"):
        die(f"--dry-run={args.dry_run}: choose pass, fail, timeout or nogpu")
    if args.budget is not None and not args.budget.isdigit():
        die(f"--budget: not a whole number of seconds: '{args.budget}'")
    args.budget = int(args.budget) if args.budget else (90 if args.dry_run else BUDGET)
    if not args.workers.isdigit() or int(args.workers) < 1:
        die(f"--workers: not a positive whole number: '{args.workers}'")
    args.workers = int(args.workers)
    names = [n for n in args.only.split(",") if n]
    for name in names:
        if name not in BY_NAME:
            die(f"--only: unknown part '{name}'; choose from {','.join(BY_NAME)}")
    args.selected = set(names) or {p.name for p in call_parts(args.second)}
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.help:
        print(__doc__)
        return 0
    if args.run_preflight:
        return preflight(Path(args.folder))
    parts = [p for p in PARTS if p in call_parts(args.second) or p.name in args.selected]
    if args.plan:
        print_plan(parts, args.workers, args.budget, args.second)
        return 0
    started = time.monotonic()
    python = os.environ.get("PYTHON", sys.executable)
    with tempfile.TemporaryDirectory(prefix="gpu_check.") as scratch:
        scratch = Path(scratch)
        if args.dry_run:
            import gpu_check_dry
            print(f"gpu_check: dry run ({args.dry_run}) in {scratch}: no GPU is used; every "
                  "result below is canned")
            try:
                payload, python = gpu_check_dry.prepare(scratch, args.dry_run, python)
            except staging.StageError as error:
                die(f"--dry-run: staging failed: {error}")
            args.folder = None
        else:
            payload = Path(args.folder or REPO / ("build-gpu-payload" if (
                REPO / "build-gpu-payload").is_dir() else "build")).resolve()
            if not payload.is_dir():
                die(f"no payload or build folder {payload} (stage one with "
                    "scripts/stage_gpu_payload.py BUILD_DIR)")
            if not (payload / staging.LIBRARY).is_file():
                die(f"{payload} has no {staging.LIBRARY}")
        env = environment(payload, python, args.workers, scratch, args.dry_run)
        if args.count:
            counted = recount(payload, python, env)
            print("| part | planned | counted here |\n|---|---|---|\n" + "\n".join(
                f"| {p.name} | {p.cases} | {counted.get(p.name, 'not counted')} |" for p in PARTS))
            recounted = [p.recounted(counted[p.name]) if counted.get(p.name) is not None else p
                         for p in call_parts(args.second)]
            print(f"the plan with these counts:\n{plan(recounted, args.workers, args.budget)}\n"
                  f"COUNTS {json.dumps(counted)}")
            return 0
        logs = Path(args.logs or payload / "gpu_check").resolve()
        logs.mkdir(parents=True, exist_ok=True)
        check = Check(args, payload, python, logs, scratch, env, started)
        print_plan(parts, args.workers, args.budget, args.second, bool(args.dry_run))
        print(f"gpu_check: payload {payload}; logs in {logs}; budget {args.budget} s", flush=True)
        for part in parts:
            if part.name in args.selected:
                check.run_part(part)
            else:
                check.results.append(dict(part=part.name, status="not selected", seconds=0,
                                          limit=0, planned=part.cases, note="--only"))
        return check.summary(args.second)


if __name__ == "__main__":
    sys.exit(main())
