// The fallback backend for every device without kernels of its own (CUDA today): the same
// contract built from ATen operators, registered under CompositeExplicitAutograd. Validation
// first (one device reduction for the index check), float32 (float64) accumulation through
// embedding_dense_backward, one scale and one rounding. A device with its own kernels adds a
// file like backends/cpu.cpp registered under its dispatch key, which takes precedence.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "backends/entry_points.h"
#include "embedding_checks.h"

namespace unit_scaling::detail {
namespace {

at::Tensor gather_aten(const at::Tensor& weight, const at::Tensor& indices) {
  std::vector<int64_t> shape(indices.sizes().begin(), indices.sizes().end());
  shape.push_back(weight.size(1));
  return weight.index_select(0, indices.reshape({-1})).view(shape);
}

at::Tensor scaled_backward_aten(const at::Tensor& grad_output, const at::Tensor& input,
                                int64_t num_weights, int64_t padding_row, double scale) {
  const at::Tensor indices = input.contiguous();
  check_indices_in_range(indices, num_weights);
  const int64_t count = indices.numel();
  const int64_t dim = grad_output.size(-1);
  const auto acc_type = grad_output.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor sum = at::embedding_dense_backward(grad_output.reshape({count, dim}).to(acc_type),
                                                indices.reshape({-1}), num_weights, padding_row,
                                                /*scale_grad_by_freq=*/false);
  return sum.mul_(scale).to(grad_output.scalar_type());
}

void renorm_rows_aten(const at::Tensor& weight, const at::Tensor& indices, double max_norm,
                      double norm_type) {
  at::Tensor target = weight;  // embedding_renorm_ takes a mutable reference
  at::embedding_renorm_(target, indices.reshape({-1}), max_norm, norm_type);
}

}  // namespace
}  // namespace unit_scaling::detail

TORCH_LIBRARY_IMPL(unit_scaling, CompositeExplicitAutograd, m) {
  using namespace unit_scaling::detail;
  register_backend<&gather_aten, &scaled_backward_aten, &renorm_rows_aten, &first_bad_index>(m);
}
