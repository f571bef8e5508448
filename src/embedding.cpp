// Device implementations of the embedding operators: CPU tensors run the framework-free kernels,
// other devices ATen ops with the same contract (validation first, float32 accumulation).
#include <ATen/ATen.h>
#include <torch/csrc/autograd/variable.h>

#include <cmath>

#include "aten_bridge.h"
#include "embedding_checks.h"
#include "embedding_ops.h"
#include "huge_page_allocation.h"

namespace unit_scaling::detail {
namespace {

// s = sqrt(V / N): the factor that brings the summed gradient of N unit-normal rows spread
// over V rows back to unit scale. N == 0 has no gradient at all, so any finite s gives zeros.
double unit_scale(int64_t num_rows, int64_t count) {
  return count == 0 ? 0.0 : std::sqrt(static_cast<double>(num_rows) / static_cast<double>(count));
}

std::vector<int64_t> output_shape(const at::Tensor& indices, int64_t dim) {
  std::vector<int64_t> shape(indices.sizes().begin(), indices.sizes().end());
  shape.push_back(dim);
  return shape;
}

int64_t padding_row(std::optional<int64_t> padding_idx, int64_t num_rows) {
  if (!padding_idx) return -1;
  return *padding_idx < 0 ? *padding_idx + num_rows : *padding_idx;
}

}  // namespace

at::Tensor embedding_lookup(const at::Tensor& input, const at::Tensor& weight,
                            std::optional<int64_t> padding_idx) {
  check_embedding_arguments(input, weight, {padding_idx, std::nullopt, 2.0, false, false});
  const at::Tensor indices = input.contiguous();
  check_indices_in_range(indices, weight.size(0));
  const int64_t dim = weight.size(1);
  if (!weight.is_cpu()) {
    return weight.index_select(0, indices.reshape({-1})).view(output_shape(indices, dim));
  }
  at::Tensor out = empty_output(output_shape(indices, dim), weight.options());
  const kernels::ConstMatrix table{weight.const_data_ptr(), weight.size(0), dim, weight.stride(0),
                                   weight.stride(1)};
  kernels::gather_rows(weight.element_size(), table, kernel_index_type(indices.scalar_type()),
                       indices.const_data_ptr(), indices.numel(), out.mutable_data_ptr(),
                       aten_executor());
  return out;
}

at::Tensor embedding_backward(const at::Tensor& grad_output, const at::Tensor& input,
                              int64_t num_weights, std::optional<int64_t> padding_idx) {
  return scaled_embedding_backward(grad_output, input, num_weights,
                                   padding_row(padding_idx, num_weights),
                                   unit_scale(num_weights, input.numel()));
}

at::Tensor scaled_embedding_backward(const at::Tensor& grad_output, const at::Tensor& input,
                                     int64_t num_weights, int64_t padding, double scale) {
  const at::Tensor indices = input.contiguous();
  const int64_t count = indices.numel();
  const int64_t dim = grad_output.size(-1);
  if (!grad_output.is_cpu()) {
    // ATen's dense backward on a float32 (float64) copy, then one scale and one rounding.
    const auto acc_type = grad_output.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    at::Tensor sum = at::embedding_dense_backward(grad_output.reshape({count, dim}).to(acc_type),
                                                  indices.reshape({-1}), num_weights, padding,
                                                  /*scale_grad_by_freq=*/false);
    return sum.mul_(scale).to(grad_output.scalar_type());
  }
  const at::Tensor grad = grad_output.contiguous();
  at::Tensor grad_weight = empty_output({num_weights, dim}, grad_output.options());
  kernels::scaled_embedding_backward(
      kernel_dtype(grad.scalar_type()), kernel_index_type(indices.scalar_type()),
      grad.const_data_ptr(), indices.const_data_ptr(), count, num_weights, dim, padding, scale,
      grad_weight.mutable_data_ptr(), aten_executor());
  return grad_weight;
}

void embedding_renorm_(const at::Tensor& weight, const at::Tensor& input, double max_norm,
                       double norm_type) {
  check_embedding_arguments(input, weight, {std::nullopt, max_norm, norm_type, false, false});
  const at::Tensor indices = input.contiguous();
  check_indices_in_range(indices, weight.size(0));           // before any write: atomic
  if (std::isinf(max_norm) || indices.numel() == 0) return;  // nothing can exceed +inf
  if (weight.is_cpu()) {
    const std::vector<int64_t> rows =
        kernels::distinct_rows(kernel_index_type(indices.scalar_type()), indices.const_data_ptr(),
                               indices.numel(), weight.size(0));
    const kernels::MutableMatrix table{weight.data_ptr(), weight.size(0), weight.size(1),
                                       weight.stride(0), weight.stride(1)};
    kernels::renorm_rows(kernel_dtype(weight.scalar_type()), table, rows, max_norm, norm_type,
                         aten_executor());
  } else {
    at::Tensor target = weight;  // embedding_renorm_ takes a mutable reference
    at::embedding_renorm_(target, indices.reshape({-1}), max_norm, norm_type);
  }
  if (!weight.is_inference()) torch::autograd::impl::bump_version(weight);
}

}  // namespace unit_scaling::detail
