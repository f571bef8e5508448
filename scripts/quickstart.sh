#!/usr/bin/env bash
# Builds and runs examples/quickstart: the two documented examples of
# unit_scaling.functional.embedding with their unit-scaled gradients.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
TARGETS=quickstart "$repo/scripts/build.sh" >&2
exec "${BUILD_DIR:-$repo/build}/examples/quickstart"
