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

#include "embedding_checks.h"
#include "lookup_shape.h"
#include "operators.h"
#include "unit_scale.h"

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

// The token-count options of a call, kept for the backward.
void save_token_count(AutogradContext* ctx, double token_multiplier,
                      std::optional<int64_t> num_tokens) {
  ctx->saved_data["token_multiplier"] = token_multiplier;
  ctx->saved_data["num_tokens"] = num_tokens ? c10::IValue(*num_tokens) : c10::IValue();
}
double saved_multiplier(AutogradContext* ctx) {
  return ctx->saved_data["token_multiplier"].toDouble();
}
std::optional<int64_t> saved_num_tokens(AutogradContext* ctx) {
  const c10::IValue& value = ctx->saved_data["num_tokens"];
  return value.isNone() ? std::nullopt : std::optional<int64_t>(value.toInt());
}

class EmbeddingBackwardFunction : public torch::autograd::Function<EmbeddingBackwardFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& grad_output,
                            const at::Tensor& input, c10::SymInt num_weights,
                            std::optional<c10::SymInt> padding_idx, double token_multiplier,
                            std::optional<int64_t> num_tokens) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({input});
    ctx->saved_data["num_weights"] = num_weights;
    ctx->saved_data["padding_idx"] = to_ivalue(padding_idx);
    save_token_count(ctx, token_multiplier, num_tokens);
    return backward_op().call(grad_output, input, num_weights, padding_idx, token_multiplier,
                              num_tokens);
  }

  // d(grad_weight)/d(grad_output) applied to grad_grad_weight: the scaled lookup
  // s * ggW[input], with padding positions set to zero (masked, so that an inf or NaN in the
  // padding row cannot leak into them as inf * 0). Symbolic sizes stay symbolic.
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const at::Tensor& grad_grad_weight = grads[0];
    const at::Tensor input = ctx->get_saved_variables()[0];
    const c10::SymInt num_weights = ctx->saved_data["num_weights"].toSymInt();
    const auto padding_idx = to_optional(ctx->saved_data["padding_idx"]);
    const at::Tensor flat = input.reshape({-1});
    std::optional<c10::SymInt> num_tokens;
    if (const auto tokens = saved_num_tokens(ctx)) num_tokens = c10::SymInt(*tokens);
    at::Tensor rows =
        grad_grad_weight.index_select(0, flat) *
        at::Scalar(unit_scale(num_weights, flat.sym_numel(), saved_multiplier(ctx), num_tokens));
    if (padding_idx) {
      const c10::SymInt row = wrap_padding_idx(*padding_idx, num_weights);
      rows = rows.masked_fill(flat.eq(at::Scalar(row)).unsqueeze(1), 0);
    }
    return {rows.view_symint(lookup_shape(input.sym_sizes(), grad_grad_weight.sym_size(1))),
            at::Tensor(),
            at::Tensor(),
            at::Tensor(),
            at::Tensor(),
            at::Tensor()};
  }
};

class EmbeddingLookupFunction : public torch::autograd::Function<EmbeddingLookupFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& weight, const at::Tensor& input,
                            std::optional<c10::SymInt> padding_idx, double token_multiplier,
                            std::optional<int64_t> num_tokens) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({input});
    ctx->saved_data["num_weights"] = weight.sym_size(0);
    ctx->saved_data["padding_idx"] = to_ivalue(padding_idx);
    save_token_count(ctx, token_multiplier, num_tokens);
    return lookup_op().call(input, weight, padding_idx, token_multiplier, num_tokens);
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const at::Tensor input = ctx->get_saved_variables()[0];
    // Through the dispatcher with autograd, so create_graph=True records this for double backward.
    const at::Tensor grad_weight = backward_op().call(
        grads[0], input, ctx->saved_data["num_weights"].toSymInt(),
        to_optional(ctx->saved_data["padding_idx"]), saved_multiplier(ctx), saved_num_tokens(ctx));
    return {grad_weight, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor lookup_autograd(const at::Tensor& input, const at::Tensor& weight,
                           std::optional<c10::SymInt> padding_idx, double token_multiplier,
                           std::optional<int64_t> num_tokens) {
  return EmbeddingLookupFunction::apply(weight, input, std::move(padding_idx), token_multiplier,
                                        num_tokens);
}

at::Tensor backward_autograd(const at::Tensor& grad_output, const at::Tensor& input,
                             c10::SymInt num_weights, std::optional<c10::SymInt> padding_idx,
                             double token_multiplier, std::optional<int64_t> num_tokens) {
  return EmbeddingBackwardFunction::apply(grad_output, input, std::move(num_weights),
                                          std::move(padding_idx), token_multiplier, num_tokens);
}

void renorm_autograd(const at::Tensor& weight, const at::Tensor& input, double max_norm,
                     double norm_type) {
  at::AutoDispatchBelowADInplaceOrView guard;
  at::NoGradGuard no_grad;
  renorm_op().call(weight, input, max_norm, norm_type);
}

at::Tensor lookup_meta(const at::Tensor& input, const at::Tensor& weight,
                       std::optional<c10::SymInt> /*padding_idx*/, double token_multiplier,
                       std::optional<int64_t> num_tokens) {
  check_input_and_weight(input, weight);
  check_token_count(token_multiplier, num_tokens);
  return at::empty_symint(lookup_shape(input.sym_sizes(), weight.sym_size(1)), weight.options());
}

at::Tensor backward_meta(const at::Tensor& grad_output, const at::Tensor& input,
                         c10::SymInt num_weights, std::optional<c10::SymInt> /*padding_idx*/,
                         double token_multiplier, std::optional<int64_t> num_tokens) {
  check_backward_tensors(grad_output, input, num_weights);
  check_token_count(token_multiplier, num_tokens);
  return at::empty_symint({std::move(num_weights), grad_output.sym_size(-1)},
                          grad_output.options());
}

at::Tensor scaled_backward_meta(const at::Tensor& grad_output, const at::Tensor& input,
                                c10::SymInt num_weights, c10::SymInt /*padding_row*/,
                                double /*scale*/) {
  check_backward_tensors(grad_output, input, num_weights);
  return at::empty_symint({std::move(num_weights), grad_output.sym_size(-1)},
                          grad_output.options());
}

void renorm_meta(const at::Tensor& weight, const at::Tensor& input, double max_norm,
                 double norm_type) {
  check_input_and_weight(input, weight);
  check_options(EmbeddingFuncOptions().max_norm(max_norm).norm_type(norm_type));
}

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
  m.impl("_scaled_embedding_backward", &unit_scaling::detail::scaled_backward_meta);
  m.impl("embedding_renorm_", &unit_scaling::detail::renorm_meta);
}
