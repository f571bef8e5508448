#!/usr/bin/env bash
# Reliability checks (docs/RELIABILITY.md): builds the library, the C++ tests and the libFuzzer
# target with clang + AddressSanitizer + UndefinedBehaviorSanitizer in ${SANITIZE_BUILD_DIR:-
# build-sanitize}, runs the GoogleTest suite there (any report fails it), then the fuzzer from
# the committed corpus: FUZZ_RUNS inputs (default 400000, about a minute here) with the fixed
# FUZZ_SEED, so that a CI run is reproducible, bounded by FUZZ_SECONDS (default 120). Crashes
# land in ${SANITIZE_BUILD_DIR}/fuzz-artifacts/; add them to tests/fuzz/corpus/ once fixed.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${UNIT_SCALING_VENV_READY:-}
[ -n "$venv" ] || venv=$("$repo/scripts/setup.sh" | tail -n 1)
build_dir=${SANITIZE_BUILD_DIR:-$repo/build-sanitize}
# ccache keys on paths relative to the clone, so every clone of this repository shares its cache.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$repo}
torch_prefix=$("$venv/bin/python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)' 2>/dev/null)
cmake -S "$repo" -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_PREFIX_PATH="$torch_prefix" -DUNIT_SCALING_SANITIZE=ON \
  -DUNIT_SCALING_BUILD_FUZZER=ON -DUNIT_SCALING_BUILD_BENCHMARKS=OFF \
  -DUNIT_SCALING_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$build_dir" -j "${JOBS:-2}"

# LibTorch itself is not instrumented: leak checking would report its static allocations.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
echo "== GoogleTest suite under ASan + UBSan"
# The multi-GiB size tests are left to the normal build: under ASan they would need ~3x memory.
# So are the ATen fallback's instances: they run ATen's code, which is not instrumented.
"$build_dir/tests/cpp/unit_scaling_tests" --gtest_brief=1 \
  --gtest_filter='-LargeSizes.*:*/AtenFallback*'

echo "== libFuzzer, ${FUZZ_RUNS:-400000} runs, seed ${FUZZ_SEED:-20261126}"
corpus="$build_dir/fuzz-corpus"
mkdir -p "$corpus" "$build_dir/fuzz-artifacts"
rm -rf "$corpus"/* && cp "$repo"/tests/fuzz/corpus/* "$corpus"/
"$build_dir/tests/fuzz/embedding_fuzzer" -runs="${FUZZ_RUNS:-400000}" -seed="${FUZZ_SEED:-20261126}" \
  -max_total_time="${FUZZ_SECONDS:-120}" \
  -artifact_prefix="$build_dir/fuzz-artifacts/" -print_final_stats=1 "$corpus" 2>&1 |
  tail -n 25
