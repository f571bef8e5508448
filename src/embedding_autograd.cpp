// Autograd and Meta kernels of the embedding operators.
//
// Autograd: embedding_lookup's gradient is embedding_backward (the unit-scaled scatter-sum);
// embedding_backward is itself differentiable -- linear in grad_output, its gradient is the
// scaled lookup s * ggW[input] with padding positions zeroed -- so double backward works.
// embedding_renorm_ is a non-differentiable in-place update (run under no-grad).
// Meta: shapes only, SymInt-aware, so FakeTensor tracing (torch.compile) needs no data.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include <cmath>

#include "operators.h"

namespace unit_scaling::detail {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

c10::IValue to_ivalue(const std::optional<c10::SymInt>& value) {
  return value ? c10::IValue(*value) : c10::IValue();
}
std::optional<c10::SymInt> to_optional(const c10::IValue& value) {
  if (value.isNone()) return std::nullopt;
  return value.toSymInt();
}

class EmbeddingBackwardFunction : public torch::autograd::Function<EmbeddingBackwardFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& grad_output,
                            const at::Tensor& input, c10::SymInt num_weights,
                            std::optional<c10::SymInt> padding_idx) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({input});
    ctx->saved_data["num_weights"] = num_weights;
    ctx->saved_data["padding_idx"] = to_ivalue(padding_idx);
    return backward_op().call(grad_output, input, num_weights, padding_idx);
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const at::Tensor& grad_grad_weight = grads[0];
    const at::Tensor input = ctx->get_saved_variables()[0];
    const int64_t num_weights =
        ctx->saved_data["num_weights"].toSymInt().guard_int(__FILE__, __LINE__);
    const auto padding_idx = to_optional(ctx->saved_data["padding_idx"]);
    const at::Tensor flat = input.reshape({-1});
    const int64_t count = flat.sym_numel().guard_int(__FILE__, __LINE__);
    const double scale =
        count == 0 ? 0.0 : std::sqrt(static_cast<double>(num_weights) / static_cast<double>(count));
    at::Tensor rows = grad_grad_weight.index_select(0, flat) * scale;
    if (padding_idx) {
      int64_t row = padding_idx->guard_int(__FILE__, __LINE__);
      if (row < 0) row += num_weights;
      rows = rows * flat.ne(row).unsqueeze(1).to(rows.scalar_type());
    }
    std::vector<c10::SymInt> shape(input.sym_sizes().begin(), input.sym_sizes().end());
    shape.push_back(grad_grad_weight.sym_size(1));
    return {rows.view_symint(shape), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

class EmbeddingLookupFunction : public torch::autograd::Function<EmbeddingLookupFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& weight, const at::Tensor& input,
                            std::optional<c10::SymInt> padding_idx) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({input});
    ctx->saved_data["num_weights"] = weight.sym_size(0);
    ctx->saved_data["padding_idx"] = to_ivalue(padding_idx);
    return lookup_op().call(input, weight, padding_idx);
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const at::Tensor input = ctx->get_saved_variables()[0];
    // Through the dispatcher with autograd, so create_graph=True records this for double backward.
    const at::Tensor grad_weight =
        backward_op().call(grads[0], input, ctx->saved_data["num_weights"].toSymInt(),
                           to_optional(ctx->saved_data["padding_idx"]));
    return {grad_weight, at::Tensor(), at::Tensor()};
  }
};

at::Tensor lookup_autograd(const at::Tensor& input, const at::Tensor& weight,
                           std::optional<c10::SymInt> padding_idx) {
  return EmbeddingLookupFunction::apply(weight, input, std::move(padding_idx));
}

at::Tensor backward_autograd(const at::Tensor& grad_output, const at::Tensor& input,
                             c10::SymInt num_weights, std::optional<c10::SymInt> padding_idx) {
  return EmbeddingBackwardFunction::apply(grad_output, input, std::move(num_weights),
                                          std::move(padding_idx));
}

void renorm_autograd(const at::Tensor& weight, const at::Tensor& input, double max_norm,
                     double norm_type) {
  at::AutoDispatchBelowADInplaceOrView guard;
  at::NoGradGuard no_grad;
  renorm_op().call(weight, input, max_norm, norm_type);
}

at::Tensor lookup_meta(const at::Tensor& input, const at::Tensor& weight,
                       std::optional<c10::SymInt> /*padding_idx*/) {
  std::vector<c10::SymInt> shape(input.sym_sizes().begin(), input.sym_sizes().end());
  shape.push_back(weight.sym_size(1));
  return at::empty_symint(shape, weight.options());
}

at::Tensor backward_meta(const at::Tensor& grad_output, const at::Tensor& /*input*/,
                         c10::SymInt num_weights, std::optional<c10::SymInt> /*padding_idx*/) {
  return at::empty_symint({std::move(num_weights), grad_output.sym_size(-1)},
                          grad_output.options());
}

void renorm_meta(const at::Tensor&, const at::Tensor&, double, double) {}

}  // namespace
}  // namespace unit_scaling::detail

TORCH_LIBRARY_IMPL(unit_scaling, Autograd, m) {
  m.impl("embedding_lookup", &unit_scaling::detail::lookup_autograd);
  m.impl("embedding_backward", &unit_scaling::detail::backward_autograd);
  m.impl("embedding_renorm_", &unit_scaling::detail::renorm_autograd);
}

TORCH_LIBRARY_IMPL(unit_scaling, Meta, m) {
  m.impl("embedding_lookup", &unit_scaling::detail::lookup_meta);
  m.impl("embedding_backward", &unit_scaling::detail::backward_meta);
  m.impl("embedding_renorm_", &unit_scaling::detail::renorm_meta);
}
