// How the CUDA kernel files launch their kernels: block size, grid size and grid-stride loops.
#pragma once

#include <cstdint>

// kernel<<<blocks, threads, 0, stream>>>(args...), written as
// UNIT_SCALING_LAUNCH(blocks, threads, stream, kernel)(args...) so that the kernels can also be
// compiled for the host, where the tests run them on an emulated grid
// (tests/cuda_emulation/cuda_emulation.h defines the macro there).
#ifndef UNIT_SCALING_LAUNCH
#define UNIT_SCALING_LAUNCH(blocks, threads, stream, ...) \
  __VA_ARGS__<<<blocks, threads, 0, stream>>>
#endif

namespace unit_scaling::kernels::cuda::detail {

constexpr int kThreads = 256;

// Blocks for `work` items of one thread each, capped; kernels loop with a grid stride.
inline unsigned blocks_for(int64_t work) {
  const int64_t blocks = (work + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 65536 ? (blocks > 0 ? blocks : 1) : 65536);
}

// Grid-stride loops over [0, total): for (int64_t t = first_item(); t < total; t += stride()).
__device__ __forceinline__ int64_t first_item() {
  return int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t stride() { return int64_t{gridDim.x} * blockDim.x; }

}  // namespace unit_scaling::kernels::cuda::detail
