// Glue between ATen types and the framework-free kernel layer.
#pragma once

#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>

#include "kernels/embedding_kernels.h"

namespace unit_scaling::detail {

// Kernel dtype of a weight already checked to be one of the four supported float types.
inline kernels::DType kernel_dtype(at::ScalarType type) {
  switch (type) {
    case at::kDouble:
      return kernels::DType::kFloat64;
    case at::kHalf:
      return kernels::DType::kFloat16;
    case at::kBFloat16:
      return kernels::DType::kBFloat16;
    default:
      return kernels::DType::kFloat32;
  }
}

// Kernel index type of an input already checked to be int32 or int64.
inline kernels::IndexType kernel_index_type(at::ScalarType type) {
  return type == at::kInt ? kernels::IndexType::kInt32 : kernels::IndexType::kInt64;
}

// The index values of a contiguous input already checked to be int32 or int64.
inline kernels::IndexArray index_array(const at::Tensor& contiguous_indices) {
  return {kernel_index_type(contiguous_indices.scalar_type()), contiguous_indices.const_data_ptr(),
          contiguous_indices.numel()};
}

// Runs kernel work on ATen's intra-op thread pool (sized by torch::set_num_threads).
inline kernels::Executor aten_executor() {
  kernels::Executor executor;
  executor.parallel_for = [](int64_t begin, int64_t end, int64_t grain,
                             const kernels::RangeBody& body) {
    at::parallel_for(begin, end, grain, [&](int64_t b, int64_t e) { body(b, e); });
  };
  executor.num_threads = at::in_parallel_region() ? 1 : at::get_num_threads();
  return executor;
}

}  // namespace unit_scaling::detail
