#!/usr/bin/env bash
# Runs the tests that need a GPU on a machine with a CUDA GPU and PyTorch 2.11 (the lent GPU
# machine): the C++ test binary built here (Cuda.* and the CUDA device-mismatch test execute
# there) and the CUDA/autograd pytest files against the library built here.
# Usage: scripts/gpu_check.sh DIR   where DIR holds unit_scaling_tests and libunit_scaling.so.0
# (copied from build/). The binaries load the GPU machine's own LibTorch.
set -euo pipefail
dir=$(cd "${1:?usage: gpu_check.sh DIR}" && pwd)
repo=$(cd "$(dirname "$0")/.." && pwd)
torch_lib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$dir:$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
"$dir/unit_scaling_tests" --gtest_brief=1
cd "$repo"
UNIT_SCALING_CPP_LIBRARY="$dir/libunit_scaling.so.0" PYTHONPATH="$repo/python" \
  python3 -m pytest -q -p no:cacheprovider tests/python/test_cuda.py tests/python/test_autograd.py
