// unit_scaling::functional::embedding: checks, in-place renorm, and the autograd Functions that
// route forward and backward to the kernels (CPU) or to ATen's ops (other devices).
#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/csrc/autograd/variable.h>
#include <unit_scaling/functional.h>

#include <cmath>

#include "aten_bridge.h"
#include "embedding_checks.h"
#include "huge_page_allocation.h"

namespace unit_scaling {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

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

at::Tensor lookup(const at::Tensor& weight, const at::Tensor& indices) {
  const int64_t dim = weight.size(1);
  if (!weight.is_cpu()) {
    return weight.index_select(0, indices.reshape({-1})).view(output_shape(indices, dim));
  }
  at::Tensor out = detail::empty_output(output_shape(indices, dim), weight.options());
  const kernels::ConstMatrix table{weight.const_data_ptr(), weight.size(0), dim, weight.stride(0),
                                   weight.stride(1)};
  kernels::gather_rows(weight.element_size(), table,
                       detail::kernel_index_type(indices.scalar_type()), indices.const_data_ptr(),
                       indices.numel(), out.mutable_data_ptr(), detail::aten_executor());
  return out;
}

// Rescales, in place, every distinct referenced row whose norm exceeds max_norm. Indices are
// already validated. Bumps weight's version counter, as an in-place ATen op would.
void renorm_referenced_rows(const at::Tensor& weight, const at::Tensor& indices, double max_norm,
                            double norm_type) {
  if (std::isinf(max_norm) || indices.numel() == 0) return;  // nothing can exceed +inf
  if (weight.is_cpu()) {
    const std::vector<int64_t> rows =
        kernels::distinct_rows(detail::kernel_index_type(indices.scalar_type()),
                               indices.const_data_ptr(), indices.numel(), weight.size(0));
    const kernels::MutableMatrix table{weight.data_ptr(), weight.size(0), weight.size(1),
                                       weight.stride(0), weight.stride(1)};
    kernels::renorm_rows(detail::kernel_dtype(weight.scalar_type()), table, rows, max_norm,
                         norm_type, detail::aten_executor());
  } else {
    at::Tensor target = weight;  // embedding_renorm_ takes a mutable reference
    at::embedding_renorm_(target, indices.reshape({-1}), max_norm, norm_type);
    return;  // the ATen op bumped the version itself
  }
  if (!weight.is_inference()) torch::autograd::impl::bump_version(weight);
}

// Weight gradient of the lookup, as a Function of grad_out so that double backward works:
// it is linear in grad_out, and its own backward is the scaled, padding-masked lookup.
class ScaledEmbeddingBackward : public torch::autograd::Function<ScaledEmbeddingBackward> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& grad_out,
                            const at::Tensor& indices, int64_t num_rows, int64_t padding_row) {
    const int64_t count = indices.numel();
    const int64_t dim = grad_out.size(-1);
    const double scale = unit_scale(num_rows, count);
    ctx->save_for_backward({indices});
    ctx->saved_data["padding_row"] = padding_row;
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["grad_out_shape"] = grad_out.sizes().vec();

    if (!grad_out.is_cpu()) {
      // ATen's dense backward on a float32 (float64) copy, then one scale and one rounding.
      const auto acc_type = grad_out.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
      at::Tensor sum = at::embedding_dense_backward(grad_out.reshape({count, dim}).to(acc_type),
                                                    indices.reshape({-1}), num_rows, padding_row,
                                                    /*scale_grad_by_freq=*/false);
      return sum.mul_(scale).to(grad_out.scalar_type());
    }
    const at::Tensor grad = grad_out.contiguous();
    at::Tensor grad_weight = detail::empty_output({num_rows, dim}, grad_out.options());
    kernels::scaled_embedding_backward(
        detail::kernel_dtype(grad.scalar_type()), detail::kernel_index_type(indices.scalar_type()),
        grad.const_data_ptr(), indices.const_data_ptr(), count, num_rows, dim, padding_row, scale,
        grad_weight.mutable_data_ptr(), detail::aten_executor());
    return grad_weight;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const at::Tensor& grad_grad_weight = grads[0];
    const at::Tensor indices = ctx->get_saved_variables()[0];
    const int64_t padding_row = ctx->saved_data["padding_row"].toInt();
    const double scale = ctx->saved_data["scale"].toDouble();
    const auto shape = ctx->saved_data["grad_out_shape"].toIntVector();
    const at::Tensor flat = indices.reshape({-1});
    at::Tensor rows = grad_grad_weight.index_select(0, flat) * scale;
    if (padding_row >= 0) rows = rows * flat.ne(padding_row).unsqueeze(1).to(rows.scalar_type());
    return {rows.view(shape), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

class ScaledEmbedding : public torch::autograd::Function<ScaledEmbedding> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& weight,
                            const at::Tensor& indices, int64_t padding_row) {
    ctx->save_for_backward({indices});
    ctx->saved_data["num_rows"] = weight.size(0);
    ctx->saved_data["padding_row"] = padding_row;
    return lookup(weight, indices);
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const at::Tensor indices = ctx->get_saved_variables()[0];
    const at::Tensor grad_weight =
        ScaledEmbeddingBackward::apply(grads[0], indices, ctx->saved_data["num_rows"].toInt(),
                                       ctx->saved_data["padding_row"].toInt());
    return {grad_weight, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

namespace functional {

at::Tensor embedding(const at::Tensor& input, const at::Tensor& weight,
                     const EmbeddingFuncOptions& options) {
  return embedding(input, weight, options.padding_idx(), options.max_norm(), options.norm_type(),
                   options.scale_grad_by_freq(), options.sparse());
}

at::Tensor embedding(const at::Tensor& input, const at::Tensor& weight,
                     std::optional<int64_t> padding_idx, std::optional<double> max_norm,
                     double norm_type, bool scale_grad_by_freq, bool sparse) {
  const detail::EmbeddingSettings settings{padding_idx, max_norm, norm_type, scale_grad_by_freq,
                                           sparse};
  const int64_t padding_row = detail::check_embedding_arguments(input, weight, settings);
  const at::Tensor indices = input.contiguous();
  detail::check_indices_in_range(indices, weight.size(0));
  // Everything is valid: from here on nothing throws for bad input.
  if (max_norm) {
    at::NoGradGuard no_grad;
    renorm_referenced_rows(weight, indices, *max_norm, norm_type);
  }
  return ScaledEmbedding::apply(weight, indices, padding_row);
}

}  // namespace functional
}  // namespace unit_scaling
