#!/usr/bin/env bash
# Configure and build the project (Release, Ninja, -j2, ccache) in ${BUILD_DIR:-build}.
# Runs scripts/setup.sh first, so it works on a fresh machine. Extra args go to cmake's
# configure step; TARGETS (space-separated) builds only those targets instead of everything.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
venv=${UNIT_SCALING_VENV_READY:-}
[ -n "$venv" ] || venv=$("$repo/scripts/setup.sh" | tail -n 1)
build_dir=${BUILD_DIR:-$repo/build}
# ccache keys on paths relative to the clone, so every clone of this repository shares its cache.
export CCACHE_BASEDIR=${CCACHE_BASEDIR:-$repo}
torch_prefix=$("$venv/bin/python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)' 2>/dev/null)
cmake -S "$repo" -B "$build_dir" -G Ninja -DCMAKE_PREFIX_PATH="$torch_prefix" \
  -DUNIT_SCALING_BUILD_PYTHON_EXTENSION=ON -DPython_EXECUTABLE="$venv/bin/python" "$@" >/dev/null
targets=()
for target in ${TARGETS:-}; do targets+=(--target "$target"); done
cmake --build "$build_dir" -j "${JOBS:-2}" "${targets[@]}"
