#!/usr/bin/env bash
# Main job (for now): build and run examples/quickstart, the two documented examples of
# unit_scaling.functional.embedding with their unit-scaled gradients.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
"$repo/scripts/build.sh" >&2
exec "${BUILD_DIR:-$repo/build}/examples/quickstart"
