// The CUDA kernels of backward.cu, compiled for the host emulation (cuda_emulation.h).
#include "cuda_emulation.h"
// clang-format off
#include "kernels/cuda/backward.cu"
// clang-format on
