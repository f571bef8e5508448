#!/usr/bin/env bash
# Main job: build and run unit-scaling-report. With no arguments it runs the built-in default
# (GPT-2 shape, 8x1024 Zipf(1.1) tokens, float32; plain embedding under a loss averaged over the
# tokens against unit-scaled embedding in a unit-scaled model) and writes report/ (CSV + PNG/SVG
# figures; docs/images/ holds the default run's).
# Arguments go to the tool (`scripts/report.sh --help`).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
TARGETS=unit-scaling-report "$repo/scripts/build.sh" >&2  # the tool alone, not the test suites
exec "${BUILD_DIR:-$repo/build}/tools/unit-scaling-report" "$@"
