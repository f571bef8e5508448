// How the CUDA kernel files launch their kernels: block size, grid size and grid-stride loops.
#pragma once

#include <cstdint>

// Every kernel is declared with a named bound on its block size,
//   __global__ void __launch_bounds__(kBound) name(...),
// and launched naming the same constant,
//   UNIT_SCALING_LAUNCH(blocks, threads, kBound, stream, kernel)(args...)
// which is kernel<<<blocks, threads, 0, stream>>>(args...). The bound caps the registers the
// compiler may give a thread; a launch of more threads than the bound fails on the GPU. The host
// emulation (tests/cuda_emulation/cuda_emulation.h defines the macros there and counts every
// launch) fails a launch of more than `bound` threads, and its test checks that each launch
// names the bound its kernel declares.
#ifndef UNIT_SCALING_LAUNCH
#define UNIT_SCALING_LAUNCH(blocks, threads, bound, stream, ...) \
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

// The most items a grid-stride loop counts in 32-bit unsigned arithmetic (narrow_items()); the
// emulation lowers it so that its tests cross the boundary at small sizes.
#ifndef UNIT_SCALING_NARROW_ITEMS
#define UNIT_SCALING_NARROW_ITEMS (int64_t{1} << 31)
#endif

namespace unit_scaling::kernels::cuda::detail {

constexpr int kThreads = 256;
constexpr int kMaxThreads = 1024;  // per block, on every architecture
constexpr int kWarp = 32;
// Static shared memory per block without an opt-in, on every architecture we ship.
constexpr int kStaticSharedBytes = 48 * 1024;
// Blocks of kThreads threads per SM that leave a thread `registers` registers (65536 per SM):
// __launch_bounds__(kThreads, blocks_with_registers(64)) caps a thread at 64 registers. The
// kernels that keep many loads in flight (the backward's window parts, rows, segments and rank
// kernels) state such a minimum: with the bound alone, ptxas trades spills for a sixth block
// (40 registers); with the minimum, none spills.
constexpr int blocks_with_registers(int registers) { return 65536 / (kThreads * registers); }

// Blocks for `work` items (one per thread at `threads` per block), at least 1, capped; kernels
// loop with a grid stride.
inline unsigned blocks_for(int64_t work, int threads = kThreads) {
  const int64_t blocks = (work + threads - 1) / threads;
  const int64_t cap = UNIT_SCALING_BLOCK_CAP;
  return static_cast<unsigned>(blocks < cap ? (blocks > 0 ? blocks : 1) : cap);
}

// Whether a grid-stride loop over [0, total) may count in uint32_t: t < total <= 2^31 and a
// stride of at most 65536 blocks x 1024 threads = 2^26 keep t + stride below 2^32.
static_assert((int64_t{1} << 31) + int64_t{65536} * kMaxThreads < int64_t{1} << 32);
inline bool narrow_items(int64_t total) { return total <= UNIT_SCALING_NARROW_ITEMS; }

// Grid-stride loops over [0, total):
//   for (Offset t = first_item<Offset>(); t < total; t += stride<Offset>())
// Offset = int64_t, or uint32_t where narrow_items(total).
template <typename Offset = int64_t>
__device__ __forceinline__ Offset first_item() {
  return static_cast<Offset>(blockIdx.x) * blockDim.x + threadIdx.x;
}
template <typename Offset = int64_t>
__device__ __forceinline__ Offset stride() {
  return static_cast<Offset>(gridDim.x) * blockDim.x;
}

}  // namespace unit_scaling::kernels::cuda::detail
