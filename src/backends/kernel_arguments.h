// Framework-free kernel arguments (kernels/kernel_types.h, kernels/kernel_params.h) from ATen
// tensors, for every backend: one helper fills each operator's parameter struct, from tensors
// the entry points have already checked (dtypes, shapes, devices).
#pragma once

#include <ATen/core/Tensor.h>

#include "dtypes.h"
#include "kernels/kernel_params.h"
#include "kernels/kernel_types.h"

namespace unit_scaling::detail {

// Kernel dtype of a tensor already checked to hold a supported dtype.
inline kernels::DType checked_kernel_dtype(at::ScalarType type) { return *kernel_dtype(type); }

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

// The lookup of `indices` (contiguous) in `weight` into `out` (contiguous, indices.numel() x D).
inline kernels::GatherParams gather_params(const at::Tensor& weight, const at::Tensor& indices,
                                           const at::Tensor& out) {
  return {const_matrix(weight), static_cast<size_t>(weight.element_size()), index_array(indices),
          out.mutable_data_ptr()};
}

// The unit-scaled gradient of `grad` (contiguous, N x D) into `grad_weight` (contiguous, V x D).
inline kernels::BackwardParams backward_params(const at::Tensor& grad, const at::Tensor& indices,
                                               int64_t padding_row, double scale,
                                               const at::Tensor& grad_weight) {
  return {checked_kernel_dtype(grad.scalar_type()),
          index_array(indices),
          grad_weight.size(0),
          padding_row,
          grad.const_data_ptr(),
          grad_weight.size(1),
          scale,
          grad_weight.mutable_data_ptr()};
}

// The max_norm renorm of the rows of `weight` that `indices` (contiguous) reference, in place.
inline kernels::RenormParams renorm_params(const at::Tensor& weight, const at::Tensor& indices,
                                           double max_norm, double norm_type) {
  return {checked_kernel_dtype(weight.scalar_type()), mutable_matrix(weight), index_array(indices),
          max_norm, norm_type};
}

}  // namespace unit_scaling::detail
