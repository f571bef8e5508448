#!/usr/bin/env bash
# Runs the C++ test binary built here on a machine with a CUDA GPU and PyTorch 2.11 installed
# (the lent GPU machine), so that the Cuda.* tests and the CUDA device-mismatch test execute.
# Usage: scripts/gpu_check.sh DIR   where DIR holds unit_scaling_tests and libunit_scaling.so.0
# (copied from build/). The binaries load the GPU machine's own LibTorch.
set -euo pipefail
dir=${1:?usage: gpu_check.sh DIR}
torch_lib=$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')
export LD_LIBRARY_PATH="$dir:$torch_lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available())'
"$dir/unit_scaling_tests" --gtest_brief=1
