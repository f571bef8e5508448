#!/usr/bin/env bash
# The whole test suite, from a fresh machine: set-up, build, then every test through ctest.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
"$repo/scripts/build.sh"
cd "${BUILD_DIR:-$repo/build}"
ctest --output-on-failure -j "${JOBS:-2}"
