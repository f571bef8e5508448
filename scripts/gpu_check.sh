#!/usr/bin/env bash
# The one-command GPU check, for one call on a machine with a CUDA GPU and torch 2.11 (its system
# python3, nothing outside reachable). It runs the parts below, each under its own time limit,
# inside one total budget (default 355 s, so under 6 minutes from a cold start), and prints the
# benchmark's table and a table of the parts last:
#   preflight  GPU visible, torch release = the build's, the library loads and registers its CUDA
#              kernels, the test binary's libraries resolve, the reference library imports
#   cpp        the C++ GoogleTest suite filtered to its CUDA tests ('*/Cuda*': the backend
#              parameter of tests/cpp/backends.h is named Cuda; the other backends run in CI;
#              plus the CUDA-only fixtures off that axis: $cpp_filter below)
#   python     the Python suite's CUDA cases without torch.compile: `-k "cuda and not compile"`
#              over tests/python (the backend axis's cuda parameters, test_cuda_runtime.py)
#   bench      bench/cuda_bench.py --quick at GPT-2 (50257x768) and Llama-3 (128256x4096),
#              N = 8192 and 65536, uniform and Zipf, float32 and bfloat16 (JSON in the logs)
#   compile    the CUDA cases that compile (`-k "cuda and compile"`): cold inductor/Triton
#              compiles cost tens of seconds, so they have their own budget, and run last
# Every part runs even when an earlier one failed (while the budget lasts). Exit status: 0 when
# every selected part passed; 1 when any failed, timed out or found no time left; 2 on bad
# arguments or a missing payload. Missed performance targets are marked ✗ in the bench table and
# fail the check only with --strict.
#
# Usage: scripts/gpu_check.sh [options] [DIR]
#   DIR  the payload staged by scripts/stage_gpu_payload.sh (default build-gpu-payload when it
#        exists, else build), or a build folder with the same layout (libunit_scaling.so.0,
#        tests/cpp/unit_scaling_tests, optional pydeps/)
#   --budget S      total seconds for everything (default 355; the parts' limits are cut to fit)
#   --only P,...    run only these parts (preflight,cpp,python,bench,compile)
#   --workers N     processes sharing the GPU (default 4): GoogleTest shards of the C++ part,
#                   pytest-xdist workers of the Python parts (where xdist is installed); each
#                   gets nproc/N CPU threads; 1: one process, no sharding
#   --strict        a missed performance target fails the bench part
#   --verbose       show the parts' output as they run (default: only in the logs)
#   --dry-run[=pass|fail|timeout|nogpu]  no GPU needed: stage a fake build into a temporary
#                   folder and run every part through stand-ins (a fake python whose pytest prints
#                   canned results, a fake GoogleTest binary, the bench's own --dry-run) with
#                   short limits, so that staging, the size check, the budgets, the tables and the
#                   exit status are exercised (tests/python/test_gpu_check.py runs it in CI)
#   --stage [ARGS]  same as scripts/stage_gpu_payload.sh ARGS (kept for older instructions)
# Environment: PYTHON (default python3); GPU_CHECK_LOGS (logs, bench JSON and summary.md, default
#   DIR/gpu_check; on the device give $OUT: at most 7 files land there); GPU_CHECK_ALL=1 runs
#   every backend, not only cuda; GPU_CHECK_CPP_FILTER replaces the C++ filter;
#   UNIT_SCALING_CPP_EXPECT_CUDA_KERNELS (default 1: the library
#   must register its CUDA kernels); per-part limits in seconds: PREFLIGHT_TIMEOUT (25),
#   CPP_TIMEOUT (60), PYTHON_TIMEOUT (75), BENCH_TIMEOUT (90), COMPILE_TIMEOUT (95): with the
#   start-up and the 10 s kept for the summary they fill the 355 s budget.
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
all_parts=(preflight cpp python bench compile)

usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "gpu_check: $1" >&2; exit 2; }
is_number() { case $1 in '' | *[!0-9]*) return 1 ;; esac; }

# --- arguments ----------------------------------------------------------------------------------
if [ "${1:-}" = --stage ]; then shift; exec "$repo/scripts/stage_gpu_payload.sh" "$@"; fi
dry_run="" budget_arg="" only="" workers="" strict=0 verbose=0 target=""
while [ $# -gt 0 ]; do
  case $1 in
    --dry-run) dry_run=pass; shift ;;
    --dry-run=*) dry_run=${1#*=}; shift ;;
    --budget) [ $# -ge 2 ] || die "--budget needs seconds"; budget_arg=$2; shift 2 ;;
    --budget=*) budget_arg=${1#*=}; shift ;;
    --only) [ $# -ge 2 ] || die "--only needs parts"; only=$2; shift 2 ;;
    --only=*) only=${1#*=}; shift ;;
    --workers) [ $# -ge 2 ] || die "--workers needs a number"; workers=$2; shift 2 ;;
    --workers=*) workers=${1#*=}; shift ;;
    --strict) strict=1; shift ;;
    --verbose) verbose=1; shift ;;
    -h | --help) usage; exit 0 ;;
    -*) die "unknown option $1 (see --help)" ;;
    *) [ -z "$target" ] || die "one folder only (got $target and $1)"; target=$1; shift ;;
  esac
done
case $dry_run in "" | pass | fail | timeout | nogpu) ;;
  *) die "--dry-run=$dry_run: choose pass, fail, timeout or nogpu" ;; esac
[ -z "$budget_arg" ] || is_number "$budget_arg" ||
  die "--budget: not a whole number of seconds: '$budget_arg'"
[ -z "$workers" ] || { is_number "$workers" && [ "$workers" -ge 1 ]; } ||
  die "--workers: not a positive whole number: '$workers'"
declare -A selected=()
for part in ${only//,/ }; do
  case " ${all_parts[*]} " in *" $part "*) selected[$part]=1 ;;
    *) die "--only: unknown part '$part'; choose from ${all_parts[*]}" ;; esac
done
if [ -z "$only" ]; then for part in "${all_parts[@]}"; do selected[$part]=1; done; fi

# --- limits (seconds): each part's own, cut to what is left of the total budget ---------------
declare -A limit=([preflight]=${PREFLIGHT_TIMEOUT:-25} [cpp]=${CPP_TIMEOUT:-60}
  [python]=${PYTHON_TIMEOUT:-75} [bench]=${BENCH_TIMEOUT:-90} [compile]=${COMPILE_TIMEOUT:-95})
budget=${budget_arg:-355}
reserve=10   # kept back for the summary at the end
min_part=5   # a part is not started with less than this
kill_after=3 # after the limit, TERM; this much later, KILL

# --- the dry run: stand-ins for the GPU machine -------------------------------------------------
# Builds, in a temporary folder, a fake build (an ELF "library" with a fake .nv_fatbin section
# and a padded debug section, a shell-script GoogleTest binary), stages it with the real staging
# script under a size limit that forces the strip, and points the run at a fake python: it runs
# the real python with a stand-in `torch` module first on its path, except that `-m pytest`
# prints canned results. The bench runs for real with --dry-run (synthetic rows, no torch).
if [ -n "$dry_run" ]; then
  real_python=${PYTHON:-python3}
  command -v "$real_python" >/dev/null || die "--dry-run needs a python3 (PYTHON=...)"
  dry=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check_dry.XXXXXX") || die "mktemp failed"
  trap 'rm -rf "$dry"' EXIT
  mkdir -p "$dry/build/tests/cpp" "$dry/faketorch/torch/lib" "$dry/site/unit_scaling" \
    "$dry/site/docstring_parser"
  # The library: a copy of an ELF program, with the section our CUDA kernels would have and 2 MiB
  # of debug section that the staging must strip to fit its 1 MiB limit.
  elf=$(readlink -f "$(command -v timeout)")
  head -c $((2 * 1048576)) /dev/zero >"$dry/debug_pad"
  echo fake >"$dry/fatbin"
  objcopy --add-section .nv_fatbin="$dry/fatbin" --add-section .debug_pad="$dry/debug_pad" \
    "$elf" "$dry/build/libunit_scaling.so.0.1.0" || die "--dry-run needs binutils (objcopy)"
  ln -s libunit_scaling.so.0.1.0 "$dry/build/libunit_scaling.so.0"
  cat >"$dry/build/tests/cpp/unit_scaling_tests" <<'EOF'
#!/usr/bin/env bash
# gpu_check --dry-run's stand-in for the GoogleTest binary: canned output for the scenario.
echo "Note: Google Test filter = ${1#--gtest_filter=}"
case " $* " in *" --gtest_filter=*/Cuda*"*) ;; *) echo "expected a Cuda filter: $*"; exit 3 ;; esac
# Three tests in all, as --gtest_brief prints them: two in shard 0, which pass (one fails in the
# fail scenario), and one skipped in shard 1 (unsharded: all three).
case "${GTEST_TOTAL_SHARDS:-1}:${GTEST_SHARD_INDEX:-0}" in
  1:0) tests=3 skipped=1 ;;
  *:0) tests=2 skipped=0 ;;
  *:1) tests=1 skipped=1 ;;
  *) tests=0 skipped=0 ;;
esac
if [ "$GPU_CHECK_DRY_RUN" = timeout ] && [ "${GTEST_SHARD_INDEX:-0}" = 1 ]; then
  echo "[ RUN      ] DeviceAssertion.Backward"
  sleep 60
fi
echo "[==========] $tests tests from 2 test suites ran. (12 ms total)"
failed=0
if [ "$GPU_CHECK_DRY_RUN" = fail ] && [ "${GTEST_SHARD_INDEX:-0}" = 0 ]; then
  echo "[  FAILED  ] Backward.Sums/Cuda_BFloat16 (3 ms)"
  failed=1
fi
echo "[  PASSED  ] $((tests - skipped - failed)) tests."
[ "$skipped" = 0 ] || echo "[  SKIPPED ] $skipped test."
if [ "$failed" = 1 ]; then
  echo "[  FAILED  ] 1 test, listed below:"
  echo "[  FAILED  ] Backward.Sums/Cuda_BFloat16"
  exit 1
fi
EOF
  chmod +x "$dry/build/tests/cpp/unit_scaling_tests"
  # The cache entries the staging reads: CUDA architectures and the torch release built against.
  mkdir -p "$dry/torchcmake"
  echo 'set(PACKAGE_VERSION "2.11.0")' >"$dry/torchcmake/TorchConfigVersion.cmake"
  printf '%s\n' "UNIT_SCALING_CUDA_ARCHITECTURES:STRING=80-real;90" \
    "UNIT_SCALING_TORCH_CMAKE_DIR:PATH=$dry/torchcmake" >"$dry/build/CMakeCache.txt"
  # The reference library: the real one where this python has it, else two stand-in packages.
  if "$real_python" -c 'import importlib.util as u, sys
sys.exit(not (u.find_spec("unit_scaling") and u.find_spec("docstring_parser")))' 2>/dev/null; then
    stage_python=$real_python
  else
    touch "$dry/site/unit_scaling/__init__.py" "$dry/site/docstring_parser/__init__.py"
    printf '#!/bin/sh\nPYTHONPATH=%s exec %s "$@"\n' "$dry/site" "$real_python" >"$dry/stage_python"
    chmod +x "$dry/stage_python"
    stage_python=$dry/stage_python
  fi
  "$repo/scripts/stage_gpu_payload.sh" --limit-mib 1 --python "$stage_python" \
    "$dry/build" "$dry/payload" || die "--dry-run: staging failed"
  grep -q '^stripped: yes' "$dry/payload/MANIFEST" || die "--dry-run: the payload was not stripped"
  if [ "$dry_run" = fail ]; then  # and a payload built from other sources: a warning
    sed -i 's/^source_state: .*/source_state: 0000000000000000/' "$dry/payload/MANIFEST"
  fi
  # A stand-in torch: the version of the device's image, a GPU unless the scenario is nogpu.
  cat >"$dry/faketorch/torch/__init__.py" <<'EOF'
"""gpu_check --dry-run's stand-in for torch: what the preflight reads, nothing more."""
import os
__version__ = "2.11.0+cu130"
class cuda:
    @staticmethod
    def is_available():
        return os.environ.get("GPU_CHECK_DRY_RUN") != "nogpu"
    @staticmethod
    def get_device_name():
        return "Dry-run GPU (no device)"
    @staticmethod
    def get_device_capability():
        return (9, 0)
EOF
  cat >"$dry/python" <<EOF
#!/usr/bin/env bash
# gpu_check --dry-run's stand-in for python3: canned pytest results, else the real python with
# the stand-in torch first on its path.
if [ "\${1:-}" = -m ] && [ "\${2:-}" = pytest ]; then
  echo "fake pytest (\$GPU_CHECK_PART): \$*"
  case "\$GPU_CHECK_DRY_RUN:\$GPU_CHECK_PART" in
    timeout:python) echo "tests/python/test_oracle.py::test_forward[cuda] PASSED"
                     sleep 60 ;;
    fail:python) echo "FAILED tests/python/test_oracle.py::test_forward[cuda] - AssertionError"
                 echo "===== 1 failed, 41 passed, 3 skipped, 350 deselected in 9.10s ====="
                 exit 1 ;;
  esac
  echo "===== 42 passed, 3 skipped, 350 deselected in 8.20s ====="
  exit 0
fi
PYTHONPATH="$dry/faketorch\${PYTHONPATH:+:\$PYTHONPATH}" exec "$real_python" "\$@"
EOF
  chmod +x "$dry/python"
  export PYTHON="$dry/python" GPU_CHECK_DRY_RUN=$dry_run
  target=$dry/payload
  # Short limits: in the timeout scenario a C++ shard and the python part sleep past theirs.
  limit=([preflight]=20 [cpp]=3 [python]=4 [bench]=30 [compile]=10)
  budget=${budget_arg:-90}
  reserve=2 min_part=1 kill_after=1
  workers=${workers:-2}  # two shards: the C++ part's shard runner is exercised
  echo "gpu_check: dry run ($dry_run) in $dry: no GPU is used; every result below is canned"
fi

# --- the payload (or build folder) --------------------------------------------------------------
if [ -z "$target" ]; then
  target=$repo/build
  [ ! -d "$repo/build-gpu-payload" ] || target=$repo/build-gpu-payload
fi
payload=$(cd "$target" 2>/dev/null && pwd) || die "no payload or build folder $target \
(stage one with scripts/stage_gpu_payload.sh BUILD_DIR)"
[ -f "$payload/libunit_scaling.so.0" ] || die "$payload has no libunit_scaling.so.0"
cd "$repo" || die "cannot enter $repo"
python=${PYTHON:-python3}
logs=${GPU_CHECK_LOGS:-$payload/gpu_check}
mkdir -p "$logs" || die "cannot create the log folder $logs"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$scratch" ${dry:+"$dry"}' EXIT
started=0  # SECONDS counts from the start of this script: the budget covers everything
deadline=$((started + budget))

# Runtime libraries: the payload, this machine's torch/lib, and the CUDA runtime of its CUDA 13
# wheel (site-packages/nvidia/cu13/lib: our library was linked against its libcudart.so.13). The
# binaries' RPATHs name the build machine's folders, which do not exist here.
read -r torch_lib cuda_lib < <("$python" - <<'EOF' 2>/dev/null
import os
try:
    import torch
    torch_lib = os.path.join(os.path.dirname(torch.__file__), "lib")
except Exception:
    torch_lib = "-"
try:
    import nvidia
    cuda_lib = next((os.path.join(p, "cu13", "lib") for p in nvidia.__path__
                     if os.path.isdir(os.path.join(p, "cu13", "lib"))), "-")
except Exception:
    cuda_lib = "-"
print(torch_lib, cuda_lib)
EOF
)
[ "${torch_lib:--}" != - ] || torch_lib=""
[ "${cuda_lib:--}" != - ] || cuda_lib=""
# Without the wheel's runtime, the toolkit's (the same CUDA 13 major version) is the fallback.
if [ -z "$cuda_lib" ] && [ -z "$dry_run" ] && [ -d /usr/local/cuda/lib64 ]; then
  cuda_lib=/usr/local/cuda/lib64
fi
LD_LIBRARY_PATH="$payload${torch_lib:+:$torch_lib}${cuda_lib:+:$cuda_lib}\
${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LD_LIBRARY_PATH
export UNIT_SCALING_CPP_LIBRARY="$payload/libunit_scaling.so.0"
export PYTHONPATH="$repo/python${PYTHONPATH:+:$PYTHONPATH}"
if [ -d "$payload/pydeps" ]; then export PYTHONPATH="$PYTHONPATH:$payload/pydeps"; fi
export UNIT_SCALING_CPP_EXPECT_CUDA_KERNELS=${UNIT_SCALING_CPP_EXPECT_CUDA_KERNELS:-1}
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
# Compile caches in scratch space (cold, as on a fresh machine; never in the log folder).
export TORCHINDUCTOR_CACHE_DIR=${TORCHINDUCTOR_CACHE_DIR:-$scratch/inductor}
export TRITON_CACHE_DIR=${TRITON_CACHE_DIR:-$scratch/triton}
manifest_value() { sed -n "s/^$1: //p" "$payload/MANIFEST" 2>/dev/null | head -n 1; }
GPU_CHECK_BUILT_TORCH=$(manifest_value torch_release)
export GPU_CHECK_BUILT_TORCH

# --- bookkeeping --------------------------------------------------------------------------------
names=() statuses=() seconds=() limits=() notes=()
failed_parts=()
record() {  # NAME STATUS SECONDS LIMIT NOTE
  names+=("$1"); statuses+=("$2"); seconds+=("$3"); limits+=("$4"); notes+=("$5")
  case $2 in PASS | "not selected") ;; *) failed_parts+=("$1") ;; esac
}

# The one-line summary of a part's log.
summarize_log() {  # NAME LOG RC
  local name=$1 log=$2 rc=$3 line
  case $name in
    preflight) grep '^preflight: ' "$log" | tail -n 1 | sed 's/^preflight: //' ;;
    cpp)  # GoogleTest's closing lines: "[==========] 12 tests from 3 test suites ran." etc.
      # Counts summed over the shards ("[  SKIPPED ] 4 tests." in --gtest_brief, "4 tests,
      # listed below:" without); failures as distinct "[  FAILED  ] Suite.Test" names.
      local ran passed skipped failed
      sum() { sed -nE "s/$1/\\1/p" "$log" | awk '{ s += $1; n++ } END { if (n) print s }'; }
      ran=$(sum '^\[=+\] ([0-9]+) tests? from .* ran.*')
      passed=$(sum '^\[ *PASSED *\] ([0-9]+) tests?[.,].*')
      skipped=$(sum '^\[ *SKIPPED *\] ([0-9]+) tests?[.,].*')
      failed=$(sed -nE 's/^\[ *FAILED *\] ([A-Za-z_][^ ]*).*/\1/p' "$log" | sort -u | grep -c .)
      if [ -z "$ran" ]; then echo "no GoogleTest summary"; return; fi
      echo "$ran ran: ${passed:-0} passed, ${skipped:-0} skipped, ${failed:-0} failed" ;;
    python | compile)
      line=$(grep -E '[0-9]+ (passed|failed|skipped|errors?|deselected)' "$log" | tail -n 1 |
        tr -d '=' | sed -E 's/^ +//; s/ +$//')
      if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then  # killed: count the verbose lines
        line="$(grep -cwE 'PASSED' "$log") passed, $(grep -cwE 'FAILED|ERROR' "$log") failed"
        line="$line before the kill"
      fi
      echo "${line:-no pytest summary}" ;;
    bench) tail -n 1 "$scratch/bench_table" 2>/dev/null ;;
  esac
}

# run_part NAME COMMAND...: runs COMMAND under the part's limit (cut to the budget left), its
# output in $logs/NAME.log, and records the outcome.
run_part() {
  local name=$1 want=${limit[$1]} log="$logs/$1.log" rc start elapsed status note cap
  shift
  if [ -z "${selected[$name]:-}" ]; then
    record "$name" "not selected" 0 "$want" "--only"
    return
  fi
  cap=$((deadline - SECONDS - reserve - kill_after))
  [ "$cap" -lt "$want" ] && want=$cap
  if [ "$want" -lt "$min_part" ]; then
    record "$name" "NO TIME" 0 "$((want > 0 ? want : 0))" \
      "the $budget s budget was spent before it could start"
    return
  fi
  echo "=== $name (limit $want s): $*"
  export GPU_CHECK_PART=$name
  start=$SECONDS
  if [ "$verbose" = 1 ]; then
    timeout --kill-after="$kill_after" "$want" "$@" 2>&1 | tee "$log"
    rc=${PIPESTATUS[0]}
  else
    timeout --kill-after="$kill_after" "$want" "$@" >"$log" 2>&1
    rc=$?
  fi
  elapsed=$((SECONDS - start))
  [ "$name" != bench ] || bench_summary
  note=$(summarize_log "$name" "$log" "$rc")
  case $rc in
    0) status=PASS ;;
    124 | 137) status=TIMEOUT; note="killed at the $want s limit; $note" ;;
    *) status="FAIL (exit $rc)" ;;
  esac
  # A part that ran nothing did not check anything.
  if [ "$status" = PASS ]; then
    case $name in
      cpp) if ! grep -qE '^\[ *PASSED *\] [1-9]' "$log"; then status="FAIL (no test passed)"; fi ;;
      python | compile)
        if ! grep -qE '[1-9][0-9]* passed' "$log"; then status="FAIL (none passed)"; fi ;;
    esac
  fi
  if [ "$name" = bench ] && [ "$status" = PASS ]; then
    case $bench_rc in
      0) ;;
      3) status="FAIL (targets missed)" ;;
      *) status="FAIL (summary $bench_rc)" ;;
    esac
  fi
  record "$name" "$status" "$elapsed" "$want" "$note"
  echo "--- $name: $status in $elapsed s: $note"
  if [ "$status" != PASS ]; then  # the lines that say why, not the whole log
    case $name in
      cpp) grep -E '^\[ *FAILED *\]|Failure|error' "$log" | head -n 20 ;;
      python | compile) grep -E '^(FAILED|ERROR) |^E ' "$log" | head -n 20 ;;
      *) tail -n 15 "$log" ;;
    esac | sed 's/^/    /'
  fi
}

# The bench table, from the JSON the bench wrote (also after a timeout: it writes as it goes).
bench_rc=0
bench_summary() {
  local strict_flag=()
  [ "$strict" = 0 ] || strict_flag=(--strict)
  : >"$scratch/bench_table"
  if [ -s "$logs/cuda_bench.json" ]; then
    "$python" bench/cuda_bench.py --summarize "$logs/cuda_bench.json" "${strict_flag[@]}" \
      >"$scratch/bench_table" 2>&1
    bench_rc=$?
  else
    echo "bench: no results (no $logs/cuda_bench.json)" >"$scratch/bench_table"
  fi
}

# --- preflight: everything the other parts take for granted --------------------------------------
preflight() {
  local fail=0
  if [ -z "${GPU_CHECK_DRY_RUN:-}" ]; then
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader ||
      echo "nvidia-smi: not available"
  fi
  echo "payload: $GPU_CHECK_PAYLOAD"
  sed -n '1,8p' "$GPU_CHECK_PAYLOAD/MANIFEST" 2>/dev/null || echo "no MANIFEST (a build folder)"
  # The binaries' shared libraries must all resolve here (torch/lib, CUDA 13, the payload).
  for f in "$GPU_CHECK_PAYLOAD"/{libunit_scaling.so.0,tests/cpp/unit_scaling_tests}; do
    if [ -z "${GPU_CHECK_DRY_RUN:-}" ] && [ -f "$f" ] && ldd "$f" | grep -q 'not found'; then
      echo "PREFLIGHT FAIL: unresolved libraries of $f:"; ldd "$f" | grep 'not found'; fail=1
    fi
  done
  # A payload built from other sources than the tree it runs in tests the wrong code.
  local staged
  staged=$(sed -n 's/^source_state: //p' "$GPU_CHECK_PAYLOAD/MANIFEST" 2>/dev/null)
  if [ -n "$staged" ] && [ "$staged" != "$(source_state)" ]; then
    echo "PREFLIGHT WARNING: the payload was built from other sources than this tree's" \
      "(source_state $staged, here $(source_state)): restage it"
    export GPU_CHECK_STALE=1
  fi
  "$PYTHON_FOR_PARTS" - <<'EOF' || fail=1
import os, sys
fails = []
import torch
built = os.environ.get("GPU_CHECK_BUILT_TORCH") or "unknown"
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
if not os.environ.get("GPU_CHECK_DRY_RUN"):
    import unit_scaling_cpp  # noqa: F401  (loads the payload's library)
    names = ("embedding_lookup", "embedding_backward", "_scaled_embedding_backward",
             "embedding_renorm_")
    missing = [n for n in names if not torch._C._dispatch_has_kernel_for_dispatch_key(
        f"unit_scaling::{n}", "CUDA")]
    kernels = "our CUDA kernels registered" if not missing else f"no CUDA kernel for {missing}"
    if missing and os.environ.get("UNIT_SCALING_CPP_EXPECT_CUDA_KERNELS") == "1":
        fails.append(kernels)
try:
    if os.environ.get("GPU_CHECK_DRY_RUN"):  # the stand-in torch cannot run it: find it only
        import importlib.util
        if importlib.util.find_spec("unit_scaling") is None:
            raise ImportError("No module named 'unit_scaling'")
    else:
        import unit_scaling.functional  # noqa: F401
    reference = "reference library importable"
except ImportError as error:
    reference = f"reference library missing ({error})"
    fails.append(reference + ": the oracle tests and the bench's ref column need it (stage it)")
for f in fails:
    print("PREFLIGHT FAIL:", f)
stale = "; WARNING: stale payload (built from other sources)" if os.environ.get(
    "GPU_CHECK_STALE") else ""
print(f"preflight: {device}; torch {torch.__version__}; {kernels}; {reference}{stale}")
sys.exit(1 if fails else 0)
EOF
  return $fail
}
# The fingerprint of the sources the binaries are built from (the same in the staging script).
source_state() {
  find src include tests/cpp cmake CMakeLists.txt -type f ! -name '*.pyc' -print0 2>/dev/null |
    LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-16
}
export -f preflight source_state
export GPU_CHECK_PAYLOAD=$payload PYTHON_FOR_PARTS=$python

# --- the parts -----------------------------------------------------------------------------------
echo "gpu_check: payload $payload; logs in $logs; budget $budget s"
run_part preflight bash -c preflight

# The C++ tests that need a GPU: the Cuda instances of the backend axis (tests/cpp/backends.h),
# suites named Cuda*, and the CUDA-only fixtures that are not on the axis (the device-assertion
# death tests). tests/python/test_gpu_check.py fails when a CUDA-only suite escapes this filter.
cpp_filter='*/Cuda*:*Cuda*.*:DeviceAssertion.*'
workers=${workers:-4}
# CPU threads per process, so that N processes do not oversubscribe the cores.
threads=$(( $(nproc 2>/dev/null || echo 4) / workers )); [ "$threads" -ge 1 ] || threads=1
# cpp_shards BINARY ARGS...: runs the binary as $workers GoogleTest shards at once
# (GTEST_TOTAL_SHARDS / GTEST_SHARD_INDEX; death-test children ignore sharding), each shard's
# output kept apart and printed whole, one after another, when all have ended or when the part's
# limit stops them.
cpp_shards() {
  local i pids=() rc=0 status
  print_shards() {
    for ((i = 0; i < GPU_CHECK_WORKERS; i++)); do
      echo "--- shard $i of $GPU_CHECK_WORKERS"; cat "$GPU_CHECK_SCRATCH/cpp.shard$i" 2>/dev/null
    done
  }
  # timeout signals the wrapper and then its whole group: the second TERM must not print again.
  trap 'trap "" TERM; print_shards; exit 124' TERM
  for ((i = 0; i < GPU_CHECK_WORKERS; i++)); do
    GTEST_TOTAL_SHARDS=$GPU_CHECK_WORKERS GTEST_SHARD_INDEX=$i OMP_NUM_THREADS=$GPU_CHECK_THREADS \
      "$@" >"$GPU_CHECK_SCRATCH/cpp.shard$i" 2>&1 &
    pids+=($!)
  done
  for pid in "${pids[@]}"; do
    wait "$pid"; status=$?
    [ "$status" -eq 0 ] || rc=$status
  done
  print_shards
  return $rc
}
export -f cpp_shards
export GPU_CHECK_WORKERS=$workers GPU_CHECK_THREADS=$threads GPU_CHECK_SCRATCH=$scratch
run_part cpp bash -c 'cpp_shards "$@"' cpp_shards "$payload/tests/cpp/unit_scaling_tests" \
  --gtest_filter="${GPU_CHECK_CPP_FILTER:-$cpp_filter}" --gtest_brief=1

# pytest: verbose lines in the log (so a killed part still says what ran), the slowest tests (the
# compile budget's evidence), worker processes where pytest-xdist is installed (cold compiles are
# CPU work: 16 cores, one GPU shared by the workers' contexts), and a per-test limit where
# pytest-timeout is, so that one hung test fails alone.
# Left out: test_torch_version.py imports the installed package's _build_info (here the source
# tree runs against the payload's library) and test_gpu_check.py is CI's test of this script.
pytest_args=(-m pytest -v -p no:cacheprovider -rfEs --durations=10
  --ignore=tests/python/test_torch_version.py --ignore=tests/python/test_gpu_check.py)
has_module() { "$python" -c "import $1" >/dev/null 2>&1; }
if [ "$workers" -gt 1 ] && has_module xdist; then xdist=(-n "$workers"); else xdist=(); fi
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$threads}
per_test_python=() per_test_compile=()
if has_module pytest_timeout; then
  per_test_python=(--timeout=60) per_test_compile=(--timeout=80)
fi
if [ "${GPU_CHECK_ALL:-0}" = 1 ]; then cuda=""; else cuda="cuda and "; fi
run_part python "$python" "${pytest_args[@]}" "${xdist[@]}" "${per_test_python[@]}" tests/python \
  -k "${cuda}not compile"

# The bench before the compile part: its numbers are the point of the run, and the cold compiles
# are the part whose time is least known; the compile part gets what is left (at most its limit).
# shellcheck disable=SC2054  # the commas are the bench's own list syntax
bench_args=(--quick --shapes gpt2,llama3 --tokens 8192,65536 --out "$logs/cuda_bench.json")
[ -z "$dry_run" ] || bench_args+=(--dry-run)
rm -f "$logs/cuda_bench.json"
run_part bench "$python" bench/cuda_bench.py "${bench_args[@]}"

run_part compile "$python" "${pytest_args[@]}" "${xdist[@]}" "${per_test_compile[@]}" tests/python \
  -k "${cuda}compile"

# --- the summary (last, so that it ends the output) ----------------------------------------------
{
  echo
  echo "=== bench (bench/cuda_bench.py; ratios against docs/PERFORMANCE.md's GPU targets)"
  if [ -s "$scratch/bench_table" ]; then cat "$scratch/bench_table"; else echo "bench: not run"; fi
  echo
  echo "=== gpu_check parts: $((SECONDS - started)) s of a $budget s budget; logs in $logs"
  echo "| part | status | seconds | limit s | summary |"
  echo "|---|---|---|---|---|"
  for i in "${!names[@]}"; do
    echo "| ${names[$i]} | ${statuses[$i]} | ${seconds[$i]} | ${limits[$i]} | ${notes[$i]} |"
  done
  if [ ${#failed_parts[@]} -gt 0 ]; then
    echo "gpu_check: FAILED (${failed_parts[*]})"
  else
    echo "gpu_check: PASSED"
  fi
} | tee "$logs/summary.md"
[ ${#failed_parts[@]} -eq 0 ] || exit 1
exit 0
