// The CUDA kernels of gather.cu, compiled for the host emulation (cuda_emulation.h).
#include "cuda_emulation.h"
// clang-format off
#include "kernels/cuda/gather.cu"
// clang-format on
