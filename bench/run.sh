#!/usr/bin/env bash
# Runs the benchmark suite and prints the ratio tables of docs/PERFORMANCE.md.
#   bench/run.sh [REGEX]     REGEX filters benchmark names (default: all, about 11 minutes)
# Environment: REPS (repetitions, default 3; medians are reported), MIN_TIME (seconds per
# repetition, default 0.2), BUILD_DIR.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
build_dir=${BUILD_DIR:-$repo/build}
"$repo/scripts/build.sh" >&2
out="$build_dir/bench.json"
"$build_dir/bench/embedding_bench" --benchmark_filter="${1:-.}" \
  --benchmark_repetitions="${REPS:-3}" --benchmark_min_time="${MIN_TIME:-0.2}" \
  --benchmark_report_aggregates_only=true --benchmark_out="$out" --benchmark_out_format=json >&2
echo "## Time ratios (median of ${REPS:-3})"
python3 "$repo/bench/format_table.py" "$out"
echo
echo "## bf16/fp16 gradient precision, Zipf(1.1), V=1000, D=64, N=65536"
"$build_dir/bench/precision_table"
