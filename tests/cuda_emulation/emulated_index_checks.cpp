// The CUDA kernels of index_checks.cu, compiled for the host emulation (cuda_emulation.h).
#include "cuda_emulation.h"
// clang-format off
#include "kernels/cuda/index_checks.cu"
// clang-format on
