// Autograd and Meta kernels of the embedding operators.
//
// Autograd: embedding_lookup's gradient is embedding_backward (the unit-scaled scatter-sum).
// embedding_backward and _scaled_embedding_backward are differentiable too: both are linear in
// grad_output, and their gradient is the scaled lookup s * ggW[input] with padding positions
// zeroed, so double backward works. embedding_renorm_ is a non-differentiable in-place update
// (run under no-grad).
// Meta: shapes only, SymInt-aware, so FakeTensor tracing (torch.compile) needs no data.
// Every kernel here runs its operator's argument checks first (embedding_checks.h), before it
// reads a size: tracing rejects what eager rejects, with the same error.
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
using OptionalSymInt = std::optional<c10::SymInt>;

c10::IValue to_ivalue(const OptionalSymInt& value) {
  return value ? c10::IValue(*value) : c10::IValue();
}
OptionalSymInt to_optional(const c10::IValue& value) {
  if (value.isNone()) return std::nullopt;
  return value.toSymInt();
}

// What a backward needs of its forward call: the table's row count, the padding index (as
// given) and the token count.
void save_call(AutogradContext* ctx, const at::Tensor& input, const c10::SymInt& num_weights,
               const OptionalSymInt& padding_idx, double token_multiplier,
               const OptionalSymInt& num_tokens) {
  ctx->save_for_backward({input});
  ctx->saved_data["num_weights"] = num_weights;
  ctx->saved_data["padding_idx"] = to_ivalue(padding_idx);
  ctx->saved_data["token_multiplier"] = token_multiplier;
  ctx->saved_data["num_tokens"] = to_ivalue(num_tokens);
}
c10::SymInt saved_num_weights(AutogradContext* ctx) {
  return ctx->saved_data["num_weights"].toSymInt();
}
OptionalSymInt saved_padding_idx(AutogradContext* ctx) {
  return to_optional(ctx->saved_data["padding_idx"]);
}
double saved_multiplier(AutogradContext* ctx) {
  return ctx->saved_data["token_multiplier"].toDouble();
}
OptionalSymInt saved_num_tokens(AutogradContext* ctx) {
  return to_optional(ctx->saved_data["num_tokens"]);
}

// d(grad_weight)/d(grad_output) applied to grad_grad_weight, for a gradient that is `scale`
// times the scatter-sum: the scaled lookup scale * ggW[input], padding positions set to zero
// (masked, so that an inf or NaN in the padding row cannot leak into them as inf * 0).
// Symbolic sizes stay symbolic.
at::Tensor scaled_lookup(const at::Tensor& grad_grad_weight, const at::Tensor& input,
                         const at::Scalar& scale, const OptionalSymInt& padding_row) {
  const at::Tensor flat = input.reshape({-1});
  at::Tensor rows = grad_grad_weight.index_select(0, flat) * scale;
  if (padding_row) rows = rows.masked_fill(flat.eq(at::Scalar(*padding_row)).unsqueeze(1), 0);
  return rows.view_symint(lookup_shape(input.sym_sizes(), grad_grad_weight.sym_size(1)));
}

class EmbeddingBackwardFunction : public torch::autograd::Function<EmbeddingBackwardFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& grad_output,
                            const at::Tensor& input, c10::SymInt num_weights,
                            OptionalSymInt padding_idx, double token_multiplier,
                            OptionalSymInt num_tokens) {
    at::AutoDispatchBelowADInplaceOrView guard;
    save_call(ctx, input, num_weights, padding_idx, token_multiplier, num_tokens);
    return backward_op().call(grad_output, input, num_weights, padding_idx, token_multiplier,
                              num_tokens);
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const at::Tensor input = ctx->get_saved_variables()[0];
    const c10::SymInt num_weights = saved_num_weights(ctx);
    const OptionalSymInt padding_idx = saved_padding_idx(ctx);
    OptionalSymInt padding_row;
    if (padding_idx) padding_row = wrap_padding_idx(*padding_idx, num_weights);
    const at::Scalar scale(
        unit_scale(num_weights, input.sym_numel(), saved_multiplier(ctx), saved_num_tokens(ctx)));
    return {scaled_lookup(grads[0], input, scale, padding_row),
            at::Tensor(),
            at::Tensor(),
            at::Tensor(),
            at::Tensor(),
            at::Tensor()};
  }
};

// _scaled_embedding_backward: the same with an explicit scale and padding row (-1: none).
class ScaledEmbeddingBackwardFunction
    : public torch::autograd::Function<ScaledEmbeddingBackwardFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& grad_output,
                            const at::Tensor& input, c10::SymInt num_weights,
                            c10::SymInt padding_row, double scale) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->save_for_backward({input});
    ctx->saved_data["padding_row"] = padding_row;
    ctx->saved_data["scale"] = scale;
    return scaled_backward_op().call(grad_output, input, num_weights, padding_row, scale);
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const c10::SymInt padding_row = ctx->saved_data["padding_row"].toSymInt();
    OptionalSymInt row;
    if (padding_row.maybe_as_int() != std::optional<int64_t>(-1)) row = padding_row;
    return {scaled_lookup(grads[0], ctx->get_saved_variables()[0],
                          ctx->saved_data["scale"].toDouble(), row),
            at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

class EmbeddingLookupFunction : public torch::autograd::Function<EmbeddingLookupFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& weight, const at::Tensor& input,
                            OptionalSymInt padding_idx, double token_multiplier,
                            OptionalSymInt num_tokens) {
    at::AutoDispatchBelowADInplaceOrView guard;
    save_call(ctx, input, weight.sym_size(0), padding_idx, token_multiplier, num_tokens);
    return lookup_op().call(input, weight, padding_idx, token_multiplier, num_tokens);
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    // Through the dispatcher with autograd, so create_graph=True records this for double backward.
    const at::Tensor grad_weight =
        backward_op().call(grads[0], ctx->get_saved_variables()[0], saved_num_weights(ctx),
                           saved_padding_idx(ctx), saved_multiplier(ctx), saved_num_tokens(ctx));
    return {grad_weight, at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor lookup_autograd(const at::Tensor& input, const at::Tensor& weight,
                           OptionalSymInt padding_idx, double token_multiplier,
                           OptionalSymInt num_tokens) {
  check_lookup_arguments(input, weight, padding_idx, token_multiplier, num_tokens);
  return EmbeddingLookupFunction::apply(weight, input, std::move(padding_idx), token_multiplier,
                                        std::move(num_tokens));
}

at::Tensor backward_autograd(const at::Tensor& grad_output, const at::Tensor& input,
                             c10::SymInt num_weights, OptionalSymInt padding_idx,
                             double token_multiplier, OptionalSymInt num_tokens) {
  check_backward_arguments(grad_output, input, num_weights, padding_idx, token_multiplier,
                           num_tokens);
  return EmbeddingBackwardFunction::apply(grad_output, input, std::move(num_weights),
                                          std::move(padding_idx), token_multiplier,
                                          std::move(num_tokens));
}

at::Tensor scaled_backward_autograd(const at::Tensor& grad_output, const at::Tensor& input,
                                    c10::SymInt num_weights, c10::SymInt padding_row,
                                    double scale) {
  check_scaled_backward_arguments(grad_output, input, num_weights, padding_row, scale);
  return ScaledEmbeddingBackwardFunction::apply(grad_output, input, std::move(num_weights),
                                                std::move(padding_row), scale);
}

void renorm_autograd(const at::Tensor& weight, const at::Tensor& input, double max_norm,
                     double norm_type) {
  check_renorm_arguments(weight, input, max_norm, norm_type);
  at::AutoDispatchBelowADInplaceOrView guard;
  at::NoGradGuard no_grad;
  renorm_op().call(weight, input, max_norm, norm_type);
}

at::Tensor lookup_meta(const at::Tensor& input, const at::Tensor& weight,
                       OptionalSymInt padding_idx, double token_multiplier,
                       OptionalSymInt num_tokens) {
  check_lookup_arguments(input, weight, padding_idx, token_multiplier, num_tokens);
  return at::empty_symint(lookup_shape(input.sym_sizes(), weight.sym_size(1)), weight.options());
}

at::Tensor backward_meta(const at::Tensor& grad_output, const at::Tensor& input,
                         c10::SymInt num_weights, OptionalSymInt padding_idx,
                         double token_multiplier, OptionalSymInt num_tokens) {
  check_backward_arguments(grad_output, input, num_weights, padding_idx, token_multiplier,
                           num_tokens);
  return at::empty_symint({std::move(num_weights), grad_output.sym_size(-1)},
                          grad_output.options());
}

at::Tensor scaled_backward_meta(const at::Tensor& grad_output, const at::Tensor& input,
                                c10::SymInt num_weights, c10::SymInt padding_row, double scale) {
  check_scaled_backward_arguments(grad_output, input, num_weights, padding_row, scale);
  return at::empty_symint({std::move(num_weights), grad_output.sym_size(-1)},
                          grad_output.options());
}

void renorm_meta(const at::Tensor& weight, const at::Tensor& input, double max_norm,
                 double norm_type) {
  check_renorm_arguments(weight, input, max_norm, norm_type);
}

}  // namespace
}  // namespace unit_scaling::detail

TORCH_LIBRARY_IMPL(unit_scaling, Autograd, m) {
  m.impl("embedding_lookup", &unit_scaling::detail::lookup_autograd);
  m.impl("embedding_backward", &unit_scaling::detail::backward_autograd);
  m.impl("_scaled_embedding_backward", &unit_scaling::detail::scaled_backward_autograd);
  m.impl("embedding_renorm_", &unit_scaling::detail::renorm_autograd);
}

TORCH_LIBRARY_IMPL(unit_scaling, Meta, m) {
  m.impl("embedding_lookup", &unit_scaling::detail::lookup_meta);
  m.impl("embedding_backward", &unit_scaling::detail::backward_meta);
  m.impl("_scaled_embedding_backward", &unit_scaling::detail::scaled_backward_meta);
  m.impl("embedding_renorm_", &unit_scaling::detail::renorm_meta);
}
