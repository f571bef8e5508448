// The CUDA kernels of renorm.cu, compiled for the host emulation (cuda_emulation.h).
#include "cuda_emulation.h"
// clang-format off
#include "kernels/cuda/renorm.cu"
// clang-format on
