#!/usr/bin/env bash
# The whole test suite, from a fresh machine: set-up, C++ build and ctest (GoogleTest, the
# downstream find_package project, quickstart, clang-format), the sanitizer build and a bounded
# fuzz run, then `pip install .` of the Python package into the project's virtualenv and pytest
# (the reference-library oracle, autograd/compile, and the report tool).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=$("$repo/scripts/setup.sh" | tail -n 1)
UNIT_SCALING_VENV_READY=$venv "$repo/scripts/build.sh"
(cd "${BUILD_DIR:-$repo/build}" && ctest --output-on-failure -j "${JOBS:-2}")
# ASan + UBSan build of the C++ suite, then a bounded libFuzzer run (docs/RELIABILITY.md).
UNIT_SCALING_VENV_READY=$venv "$repo/scripts/sanitize.sh"
# --no-build-isolation: build against the venv's pinned torch instead of downloading it again.
"$venv/bin/python" -m pip install -q --no-build-isolation "$repo"
cd "$repo"
UNIT_SCALING_REPORT="${BUILD_DIR:-$repo/build}/tools/unit-scaling-report" "$venv/bin/python" -m pytest -q
