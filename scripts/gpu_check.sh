#!/usr/bin/env bash
# The one-command GPU check. On a machine with a CUDA GPU and torch 2.11 (system python3, no
# internet, no venv), from a tree built on a CPU machine with the CUDA backend on and carried
# over (build/ holds libunit_scaling.so*, tests/cpp/unit_scaling_tests, tools/...), it runs in
# about six minutes:
#   cpp     the C++ GoogleTest suite (its CUDA-parameterized tests run on the GPU);
#   python  the Python suite's CUDA side: the `cuda` parameters of the backend axis (`-k cuda`;
#           the cpu and aten_fallback parameters run in CI) and test_cuda_runtime.py;
#   bench   bench/cuda_bench.py --quick (its table, and JSON in the log folder);
# and prints a table of what ran, last. Every part runs even when an earlier one failed; the exit
# status is 1 when any part failed, timed out or could not run.
#
# Usage: scripts/gpu_check.sh [BUILD_DIR]            (default: build)
#        scripts/gpu_check.sh --stage [BUILD_DIR]    run on the build machine before carrying
#            BUILD_DIR over: copies the reference library (unit_scaling, pure Python) and its
#            dependency docstring_parser from the project's venv into BUILD_DIR/pydeps, for GPU
#            machines without them (the tests' oracle and the benchmark's reference column).
# Environment: PYTHON (default python3); GPU_CHECK_LOGS (logs and bench JSON, default
#   BUILD_DIR/gpu_check); GPU_CHECK_ALL=1 runs every backend of the Python suite, not only cuda;
#   UNIT_SCALING_CPP_EXPECT_CUDA_KERNELS (default 1: the library must register its CUDA kernels;
#   0 for a build with the CUDA backend off); CPP_TIMEOUT, PYTHON_TIMEOUT, BENCH_TIMEOUT
#   (seconds per part: 120, 240, 120).
set -uo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)

if [ "${1:-}" = "--stage" ]; then
  set -e
  build=$(cd "${2:-$repo/build}" && pwd)
  venv=${UNIT_SCALING_VENV:-$HOME/.cache/unit-scaling-cpp/venv}
  site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  rm -rf "$build/pydeps"
  mkdir -p "$build/pydeps"
  cp -r "$site/unit_scaling" "$site/docstring_parser" "$build/pydeps/"
  find "$build/pydeps" -name __pycache__ -prune -exec rm -rf {} +
  echo "staged unit_scaling and docstring_parser in $build/pydeps"
  exit 0
fi

if ! build=$(cd "${1:-$repo/build}" 2>/dev/null && pwd); then
  echo "gpu_check: no build folder ${1:-$repo/build}" >&2
  exit 2
fi
cd "$repo"
python=${PYTHON:-python3}
logs=${GPU_CHECK_LOGS:-$build/gpu_check}
mkdir -p "$logs"
export PYTHONUNBUFFERED=1

# Runtime libraries: the build folder, this machine's torch/lib, and the CUDA runtime of its
# CUDA 13 wheel (site-packages/nvidia/cu13/lib: our library was linked against its libcudart.so.13).
torch_lib=$("$python" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
cuda_lib=$("$python" - <<'EOF' 2>/dev/null
import os, nvidia
print(next((os.path.join(p, "cu13", "lib") for p in nvidia.__path__
            if os.path.isdir(os.path.join(p, "cu13", "lib"))), ""))
EOF
)
export LD_LIBRARY_PATH="$build:$torch_lib${cuda_lib:+:$cuda_lib}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export UNIT_SCALING_CPP_LIBRARY="$build/libunit_scaling.so.0"
export PYTHONPATH="$repo/python${PYTHONPATH:+:$PYTHONPATH}"
if [ -d "$build/pydeps" ]; then export PYTHONPATH="$PYTHONPATH:$build/pydeps"; fi
export UNIT_SCALING_CPP_EXPECT_CUDA_KERNELS=${UNIT_SCALING_CPP_EXPECT_CUDA_KERNELS:-1}

nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
"$python" -c 'import torch; print("torch", torch.__version__, "- CUDA available:", torch.cuda.is_available())'
echo "libcudart.so.13 from: ${cuda_lib:-the system library path (no site-packages/nvidia/cu13/lib)}"

names=() statuses=() seconds=() notes=()
failed=0
record() {  # name status seconds note
  names+=("$1"); statuses+=("$2"); seconds+=("$3"); notes+=("$4")
  case $2 in PASS) ;; *) failed=1 ;; esac
}
# Without a visible GPU every CUDA test skips: say so, and fail, whatever the parts report.
if ! "$python" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  record gpu "NOT FOUND" 0 "torch.cuda.is_available() is False: the CUDA tests skip"
fi

# run_part NAME LIMIT COMMAND...: runs COMMAND under a time limit, its output shown and kept in
# $logs/NAME.log, and records the outcome with a one-line summary read from the log.
run_part() {
  local name=$1 limit=$2 log="$logs/$1.log" rc start note
  shift 2
  echo
  echo "=== $name: $*"
  start=$SECONDS
  timeout --kill-after=10 "$limit" "$@" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  case $name in
    cpp) note=$(grep -E '^\[ *(PASSED|FAILED|SKIPPED) *\] [0-9]+ test' "$log" |
                sed -E 's/^\[ *([A-Z]+) *\] ([0-9]+).*/\2 \1/' | tr 'A-Z' 'a-z' | paste -sd, |
                sed 's/,/, /g') ;;
    python) note=$(grep -E '[0-9]+ (passed|failed|skipped|error|deselected)' "$log" | tail -n 1 |
                   tr -d '=' | sed -E 's/^ +//; s/ +$//') ;;
    bench) local rows
           rows=$(grep -cE '^\| [a-z0-9]+ \| [a-z0-9]+ \| [a-z]+ \| (ok|FAIL) \|' "$log")
           note="no table"
           if [ "$rows" -gt 0 ]; then
             note="$(grep -c '^|.*✗' "$log") of $rows rows miss a target"
             note="$note; $(grep -c '| FAIL |' "$log") fail the check"
           fi ;;
  esac
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then note="timed out after ${limit} s${note:+; $note}"; fi
  if [ "$rc" -eq 0 ]; then record "$name" PASS $((SECONDS - start)) "$note"
  else record "$name" "FAIL (exit $rc)" $((SECONDS - start)) "$note"; fi
}

# 1. The C++ suite.
gtest="$build/tests/cpp/unit_scaling_tests"
if [ -x "$gtest" ]; then
  run_part cpp "${CPP_TIMEOUT:-120}" "$gtest" --gtest_brief=1
else
  record cpp "NOT RUN" 0 "missing $gtest"
fi

# 2. The Python suite: the backend axis's cuda parameters and the CUDA runtime checks.
python_files=(tests/python/test_oracle.py tests/python/test_opcheck.py
  tests/python/test_compile_dynamic.py tests/python/test_autograd.py
  tests/python/test_differences.py tests/python/test_errors.py
  tests/python/test_operator_checks.py tests/python/test_backend_axis.py)
if [ "${GPU_CHECK_ALL:-0}" = 1 ]; then select=(); else select=(-k cuda); fi
if ! "$python" -c 'import unit_scaling' 2>/dev/null; then
  # The oracle needs the reference library: run the rest, and fail clearly.
  record reference "NOT RUN" 0 "unit_scaling not importable: test_oracle.py and \
test_differences.py left out; stage it with scripts/gpu_check.sh --stage"
  kept=()
  for f in "${python_files[@]}"; do
    case $f in */test_oracle.py | */test_differences.py) ;; *) kept+=("$f") ;; esac
  done
  python_files=("${kept[@]}")
fi
# -k cuda: every test whose name or file names cuda (test_cuda_runtime.py whole).
run_part python "${PYTHON_TIMEOUT:-240}" "$python" -m pytest -q -p no:cacheprovider -rfEs \
  tests/python/test_cuda_runtime.py "${python_files[@]}" "${select[@]}"

# 3. The benchmark.
run_part bench "${BENCH_TIMEOUT:-120}" "$python" bench/cuda_bench.py --quick \
  --out "$logs/cuda_bench.json"

echo
echo "=== gpu_check summary (logs in $logs)"
echo "| part | result | seconds | summary |"
echo "|---|---|---|---|"
for i in "${!names[@]}"; do
  echo "| ${names[$i]} | ${statuses[$i]} | ${seconds[$i]} | ${notes[$i]} |"
done
if [ "$failed" -ne 0 ]; then echo "gpu_check: FAILED"; exit 1; fi
echo "gpu_check: all parts passed"
