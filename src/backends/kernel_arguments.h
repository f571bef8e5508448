// Framework-free kernel arguments (kernels/kernel_types.h) from ATen tensors, for every backend.
#pragma once

#include <ATen/core/Tensor.h>

#include "kernels/kernel_types.h"

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

// The index values of a contiguous input already checked to be int32 or int64.
inline kernels::IndexArray index_array(const at::Tensor& contiguous_indices) {
  const auto type = contiguous_indices.scalar_type() == at::kInt ? kernels::IndexType::kInt32
                                                                 : kernels::IndexType::kInt64;
  return {type, contiguous_indices.const_data_ptr(), contiguous_indices.numel()};
}

// A 2-D tensor as a kernel matrix (strides in elements).
inline kernels::ConstMatrix const_matrix(const at::Tensor& t) {
  return {t.const_data_ptr(), t.size(0), t.size(1), t.stride(0), t.stride(1)};
}
inline kernels::MutableMatrix mutable_matrix(const at::Tensor& t) {
  return {t.data_ptr(), t.size(0), t.size(1), t.stride(0), t.stride(1)};
}

}  // namespace unit_scaling::detail
