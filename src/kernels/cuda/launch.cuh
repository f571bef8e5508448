// How the CUDA kernel files launch their kernels: block size, grid size and grid-stride loops.
#pragma once

#include <cstdint>

// kernel<<<blocks, threads, 0, stream>>>(args...), written as
// UNIT_SCALING_LAUNCH(blocks, threads, stream, kernel)(args...) so that the kernels can also be
// compiled for the host, where the tests run them on an emulated grid
// (tests/cuda_emulation/cuda_emulation.h defines the macros there, and counts every launch).
#ifndef UNIT_SCALING_LAUNCH
#define UNIT_SCALING_LAUNCH(blocks, threads, stream, ...) \
  __VA_ARGS__<<<blocks, threads, 0, stream>>>
#endif

// A static shared-memory array of a block: UNIT_SCALING_SHARED_ARRAY(float, tile, 256);
#ifndef UNIT_SCALING_SHARED_ARRAY
#define UNIT_SCALING_SHARED_ARRAY(type, name, count) __shared__ type name[count]
#endif

// The most blocks blocks_for() gives (the emulation lowers it so that grid-stride loops turn).
#ifndef UNIT_SCALING_BLOCK_CAP
#define UNIT_SCALING_BLOCK_CAP 65536u
#endif

namespace unit_scaling::kernels::cuda::detail {

constexpr int kThreads = 256;
constexpr int kWarp = 32;
// Static shared memory per block without an opt-in, on every architecture we ship.
constexpr int kStaticSharedBytes = 48 * 1024;

// Blocks for `work` items (one per thread at `threads` per block), at least 1, capped; kernels
// loop with a grid stride.
inline unsigned blocks_for(int64_t work, int threads = kThreads) {
  const int64_t blocks = (work + threads - 1) / threads;
  const int64_t cap = UNIT_SCALING_BLOCK_CAP;
  return static_cast<unsigned>(blocks < cap ? (blocks > 0 ? blocks : 1) : cap);
}

// Grid-stride loops over [0, total): for (int64_t t = first_item(); t < total; t += stride()).
__device__ __forceinline__ int64_t first_item() {
  return int64_t{blockIdx.x} * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t stride() { return int64_t{gridDim.x} * blockDim.x; }

}  // namespace unit_scaling::kernels::cuda::detail
