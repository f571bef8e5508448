// A sequential host emulation of the small part of CUDA that our kernels use, so that the CUDA
// kernels' own source (src/kernels/cuda/*.cu) is compiled by the host compiler and run in CI,
// where there is no GPU. A launch runs every thread of every block one after the other.
//
// This is exact for kernels whose threads do not talk to each other inside a launch (no shared
// memory, barriers or warp shuffles; atomics are plain read-modify-writes here): gather,
// index checks and the backward's steps. renorm.cu uses warp shuffles and is not emulated.
// What it cannot find: races, memory-model and performance problems -- those need a GPU.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <vector>

#define UNIT_SCALING_CUDA_EMULATION 1
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __restrict__ __restrict

using cudaError_t = int;
using cudaStream_t = void*;
constexpr cudaError_t cudaSuccess = 0;

inline cudaError_t cudaGetLastError() { return cudaSuccess; }
inline cudaError_t cudaMemsetAsync(void* target, int value, size_t bytes, cudaStream_t) {
  std::memset(target, value, bytes);
  return cudaSuccess;
}

struct alignas(16) uint4 {
  unsigned x, y, z, w;
};
struct alignas(8) uint2 {
  unsigned x, y;
};

namespace emulation {
struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
};
}  // namespace emulation
inline thread_local emulation::Dim3 threadIdx, blockIdx, blockDim, gridDim;

inline unsigned long long atomicMax(unsigned long long* address, unsigned long long value) {
  const unsigned long long old = *address;
  if (value > old) *address = value;
  return old;
}

inline int64_t min(int64_t a, int64_t b) { return a < b ? a : b; }

namespace emulation {
// Runs kernel(args...) for every (block, thread) of a 1-D grid, in order.
template <typename Kernel>
auto launch(unsigned blocks, unsigned threads, Kernel kernel) {
  return [=](auto... args) {
    gridDim.x = blocks;
    blockDim.x = threads;
    for (unsigned b = 0; b < blocks; ++b) {
      for (unsigned t = 0; t < threads; ++t) {
        blockIdx.x = b;
        threadIdx.x = t;
        kernel(args...);
      }
    }
  };
}
}  // namespace emulation

#define UNIT_SCALING_LAUNCH(blocks, threads, stream, ...) \
  ((void)(stream), ::emulation::launch(blocks, threads, &__VA_ARGS__))

// CUB's stable radix sort of (key, value) pairs over key bits [begin_bit, end_bit).
namespace cub {
struct DeviceRadixSort {
  template <typename Key, typename Value, typename NumItems>
  static cudaError_t SortPairs(void* temp, size_t& temp_bytes, const Key* keys_in, Key* keys_out,
                               const Value* values_in, Value* values_out, NumItems count,
                               int begin_bit, int end_bit, cudaStream_t = nullptr) {
    if (temp == nullptr) {
      temp_bytes = 1;
      return cudaSuccess;
    }
    const auto n = static_cast<size_t>(count);
    const auto bits = [&](Key key) {
      const int width = end_bit - begin_bit;
      const Key shifted = static_cast<Key>(key >> begin_bit);
      return width >= static_cast<int>(8 * sizeof(Key))
                 ? shifted
                 : static_cast<Key>(shifted & ((Key{1} << width) - 1));
    };
    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), size_t{0});
    std::stable_sort(order.begin(), order.end(),
                     [&](size_t a, size_t b) { return bits(keys_in[a]) < bits(keys_in[b]); });
    for (size_t i = 0; i < n; ++i) {
      keys_out[i] = keys_in[order[i]];
      values_out[i] = values_in[order[i]];
    }
    return cudaSuccess;
  }
};
}  // namespace cub
