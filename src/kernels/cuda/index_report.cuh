// Device side of IndexReport (embedding_kernels_cuda.h): how a kernel that reads an index
// reports one outside [0, num_rows).
#pragma once

#include <cstdio>

#include "kernels/cuda/embedding_kernels_cuda.h"
#include "kernels/cuda/launch.cuh"
#include "kernels/messages.h"

// The device assertion behind assert() (CUDA's device runtime), declared here because <cassert>
// declares it only without NDEBUG.
extern "C" __host__ __device__ void __assert_fail(const char* assertion, const char* file,
                                                  unsigned int line, const char* function) noexcept;

namespace unit_scaling::kernels::cuda::detail {

// One unsigned compare: negative values wrap to huge ones.
__device__ __forceinline__ bool index_valid(int64_t value, int64_t num_rows) {
  return static_cast<uint64_t>(value) < static_cast<uint64_t>(num_rows);
}

[[maybe_unused]] static __device__ __noinline__ void report_bad_index(
    const IndexReport& report, int64_t count, int64_t position, int64_t value, int64_t num_rows) {
  if (report.status != nullptr) {
    atomicMax(report.status, static_cast<unsigned long long>(count - position));
  }
  if (report.trap) {
    // The host's IndexError sentence (kernels/messages.h), without the shape the device lacks.
    printf(UNIT_SCALING_BAD_INDEX_FORMAT "\n", static_cast<long long>(value), "",
           static_cast<long long>(position), static_cast<long long>(num_rows),
           static_cast<long long>(num_rows));
    // Not assert(): release builds define NDEBUG, and this check must stay.
    __assert_fail("index out of range", __FILE__, __LINE__, __func__);
  }
}

// Clears the status word, if any, on the stream.
inline cudaError_t clear_status(const IndexReport& report, cudaStream_t stream) {
  if (report.status == nullptr) return cudaSuccess;
  return cudaMemsetAsync(report.status, 0, sizeof(unsigned long long), stream);
}

}  // namespace unit_scaling::kernels::cuda::detail
