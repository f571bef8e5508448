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

std::vector<int64_t> output_shape(const at::Tensor& indices, int64_t dim) {
  std::vector<int64_t> shape(indices.sizes().begin(), indices.sizes().end());
  shape.push_back(dim);
  return shape;
}

kernels::IndexArray index_array(const at::Tensor& contiguous_indices) {
  return {kernel_index_type(contiguous_indices.scalar_type()), contiguous_indices.const_data_ptr(),
          contiguous_indices.numel()};
}

}  // namespace

double unit_scale(int64_t num_rows, int64_t count, double token_multiplier,
                  std::optional<int64_t> num_tokens) {
  if (count == 0) return 0.0;
  const double tokens =
      num_tokens ? static_cast<double>(*num_tokens) : static_cast<double>(count) * token_multiplier;
  return std::sqrt(static_cast<double>(num_rows) / tokens);
}

at::Tensor embedding_lookup(const at::Tensor& input, const at::Tensor& weight,
                            std::optional<int64_t> padding_idx, double token_multiplier,
                            std::optional<int64_t> num_tokens) {
  check_input_and_weight(input, weight);
  check_token_count(token_multiplier, num_tokens);
  padding_row(padding_idx, weight.size(0));
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
                              int64_t num_weights, std::optional<int64_t> padding_idx,
                              double token_multiplier, std::optional<int64_t> num_tokens) {
  check_backward_arguments(grad_output, input, num_weights);
  check_token_count(token_multiplier, num_tokens);
  const int64_t padding = padding_row(padding_idx, num_weights);
  return scaled_embedding_backward(
      grad_output, input, num_weights, padding,
      unit_scale(num_weights, input.numel(), token_multiplier, num_tokens));
}

at::Tensor scaled_embedding_backward(const at::Tensor& grad_output, const at::Tensor& input,
                                     int64_t num_weights, int64_t padding, double scale) {
  const at::Tensor indices = input.contiguous();
  const int64_t count = indices.numel();
  const int64_t dim = grad_output.size(-1);
  if (!grad_output.is_cpu()) {
    check_indices_in_range(indices, num_weights);
    // ATen's dense backward on a float32 (float64) copy, then one scale and one rounding.
    const auto acc_type = grad_output.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
    at::Tensor sum = at::embedding_dense_backward(grad_output.reshape({count, dim}).to(acc_type),
                                                  indices.reshape({-1}), num_weights, padding,
                                                  /*scale_grad_by_freq=*/false);
    return sum.mul_(scale).to(grad_output.scalar_type());
  }
  // The counting sort reads every index once; it validates them in the same pass, before the
  // gradient is allocated or written.
  kernels::RowGroups groups;
  const int64_t bad =
      kernels::group_positions_by_row(index_array(indices), num_weights, padding, groups);
  if (bad >= 0) {
    throw_bad_index(
        kernels::index_at(kernel_index_type(indices.scalar_type()), indices.const_data_ptr(), bad),
        indices.sizes(), bad, num_weights);
  }
  const at::Tensor grad = grad_output.contiguous();
  at::Tensor grad_weight = empty_output({num_weights, dim}, grad_output.options());
  kernels::write_scaled_gradient(kernel_dtype(grad.scalar_type()), groups, grad.const_data_ptr(),
                                 dim, scale, grad_weight.mutable_data_ptr(), aten_executor());
  return grad_weight;
}

void embedding_renorm_(const at::Tensor& weight, const at::Tensor& input, double max_norm,
                       double norm_type) {
  check_input_and_weight(input, weight);
  check_options(EmbeddingFuncOptions().max_norm(max_norm).norm_type(norm_type));
  check_writable_without_overlap(weight);
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
