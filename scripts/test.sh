#!/usr/bin/env bash
# The whole test suite, from a fresh machine: set-up; C++ build (with the CUDA backend where nvcc
# is) and ctest (GoogleTest on every backend, the CUDA kernels on a host emulation and their
# register report, the downstream find_package project, quickstart, clang-format); the sanitizer
# build and a bounded fuzz run; then `pip install .` of the Python package into the project's
# virtualenv and pytest (every backend, the reference-library oracle, autograd/compile, the
# multi-process tests and the report tool).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=$("$repo/scripts/setup.sh" | tail -n 1)
# The CUDA backend is compiled (not run: no GPU here) wherever nvcc is, so that a compile error
# or a register spill cannot land; the project's machines have nvcc 13.0.
cuda=ON
if ! command -v nvcc >/dev/null && [ ! -x /usr/local/cuda/bin/nvcc ]; then
  echo "test: WARNING: no nvcc on this machine, the CUDA backend is not compiled" >&2
  cuda=OFF
fi
PATH=$PATH:/usr/local/cuda/bin UNIT_SCALING_VENV_READY=$venv "$repo/scripts/build.sh" \
  -DUNIT_SCALING_CUDA=$cuda
(cd "${BUILD_DIR:-$repo/build}" && ctest --output-on-failure -j "${JOBS:-2}")
# ASan + UBSan build of the C++ suite, then a bounded libFuzzer run (docs/RELIABILITY.md).
UNIT_SCALING_VENV_READY=$venv "$repo/scripts/sanitize.sh"
# --no-build-isolation: build against the venv's pinned torch instead of downloading it again.
"$venv/bin/python" -m pip install -q --no-build-isolation "$repo"
cd "$repo"
UNIT_SCALING_REPORT="${BUILD_DIR:-$repo/build}/tools/unit-scaling-report" \
  UNIT_SCALING_VOCAB_PARALLEL_TEST="${BUILD_DIR:-$repo/build}/tests/distributed/vocab_parallel_test" \
  "$venv/bin/python" -m pytest -q
