#!/usr/bin/env bash
# Runs examples/vocab_parallel with P processes on this machine (loopback), setting the usual
# MASTER_ADDR, MASTER_PORT, RANK and WORLD_SIZE, as torchrun would. Usage: launch_vocab_parallel.sh [P]
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
world=${1:-2}
"$repo/scripts/build.sh" >&2
binary="${BUILD_DIR:-$repo/build}/examples/vocab_parallel"
export MASTER_ADDR=${MASTER_ADDR:-127.0.0.1} MASTER_PORT=${MASTER_PORT:-29511} WORLD_SIZE=$world
pids=()
for ((rank = 0; rank < world; rank++)); do
  RANK=$rank timeout 300 "$binary" &
  pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
exit $status
