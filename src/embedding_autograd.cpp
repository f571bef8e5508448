// Autograd and Meta kernels of the embedding operators, and the double backward.
//
// Autograd: embedding_lookup's gradient is embedding_backward (the unit-scaled scatter-sum).
// embedding_backward and _scaled_embedding_backward are differentiable too: both are linear in
// grad_output, G = s * scatter_sum(grad_output) over the non-padding positions, so their
// gradient, applied to an incoming ggW (V x D), is the scaled lookup s * ggW[input] with the
// padding positions set to zero -- masked, so that an inf or NaN in the padding row cannot leak
// into them as inf * 0 -- built from ATen operators (differentiable again), the operator
// _embedding_double_backward (CompositeImplicitAutograd: torch.func's route calls it too).
// embedding_renorm_ is a non-differentiable in-place update (run under no-grad).
// Meta: shapes only, SymInt-aware, so FakeTensor tracing (torch.compile) needs no data.
// Every kernel here runs its operator's argument checks first (embedding_checks.h), before it
// reads a size: tracing rejects what eager rejects, with the same error.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include "call_options.h"
#include "embedding_checks.h"
#include "lookup_shape.h"
#include "operators.h"
#include "unit_scale.h"

namespace unit_scaling::detail {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// scale * ggW[input], shape input.shape + (D,), positions equal to padding_row zeroed; symbolic
// sizes stay symbolic.
at::Tensor scaled_lookup(const at::Tensor& grad_grad_weight, const at::Tensor& input,
                         const at::Scalar& scale, const std::optional<c10::SymInt>& padding_row) {
  const at::Tensor flat = input.reshape({-1});
  at::Tensor rows = grad_grad_weight.index_select(0, flat) * scale;
  if (padding_row) rows = rows.masked_fill(flat.eq(at::Scalar(*padding_row)).unsqueeze(1), 0);
  return rows.view_symint(lookup_shape(input.sym_sizes(), grad_grad_weight.sym_size(1)));
}

// _embedding_double_backward(ggW, input, <options>): the options checked against a table of
// ggW's rows and input's lookups, then the scaled lookup with the call's unit scale and padding.
at::Tensor double_backward(const at::Tensor& grad_grad_weight, const at::Tensor& input,
                           const CallOptions& options) {
  check_lookup_arguments(input, grad_grad_weight, options);
  const c10::SymInt num_rows = grad_grad_weight.sym_size(0);
  // The index values are index_select's to check (IndexError on the CPU): every route here comes
  // from a forward that checked them, and a check of our own would call an operator whose C++
  // autograd functorch refuses (this operator runs under torch.func's transforms).
  const at::Scalar scale(unit_scale(num_rows, input.sym_numel(), options));
  return scaled_lookup(grad_grad_weight, input, scale, padding_row(options.padding_idx, num_rows));
}

// What a backward needs of its forward call: the input, the table's row count and the options.
void save_call(AutogradContext* ctx, const at::Tensor& input, const c10::SymInt& num_weights,
               const CallOptions& options) {
  ctx->save_for_backward({input});
  ctx->saved_data["num_weights"] = num_weights;
  ctx->saved_data["options"] = options_to_ivalue(options);
}
at::Tensor saved_input(AutogradContext* ctx) { return ctx->get_saved_variables()[0]; }
c10::SymInt saved_num_weights(AutogradContext* ctx) {
  return ctx->saved_data["num_weights"].toSymInt();
}
CallOptions saved_options(AutogradContext* ctx) {
  return options_from_ivalue(ctx->saved_data["options"]);
}

class EmbeddingBackwardFunction : public torch::autograd::Function<EmbeddingBackwardFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& grad_output,
                            const at::Tensor& input, const c10::SymInt& num_weights,
                            const CallOptions& options) {
    at::AutoDispatchBelowADInplaceOrView guard;
    save_call(ctx, input, num_weights, options);
    return call_backward(grad_output, input, num_weights, options);
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const at::Tensor grad_grad_output =
        call_double_backward(grads[0], saved_input(ctx), saved_options(ctx));
    return {grad_grad_output, at::Tensor(), at::Tensor(), at::Tensor()};
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
    std::optional<c10::SymInt> row;
    if (padding_row.maybe_as_int() != std::optional<int64_t>(-1)) row = padding_row;
    return {scaled_lookup(grads[0], ctx->get_saved_variables()[0],
                          ctx->saved_data["scale"].toDouble(), row),
            at::Tensor(), at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

class EmbeddingLookupFunction : public torch::autograd::Function<EmbeddingLookupFunction> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& weight, const at::Tensor& input,
                            const CallOptions& options) {
    at::AutoDispatchBelowADInplaceOrView guard;
    save_call(ctx, input, weight.sym_size(0), options);
    return call_lookup(input, weight, options);
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    // Through the dispatcher with autograd, so create_graph=True records this for double backward.
    const at::Tensor grad_weight =
        call_backward(grads[0], saved_input(ctx), saved_num_weights(ctx), saved_options(ctx));
    return {grad_weight, at::Tensor(), at::Tensor()};
  }
};

at::Tensor lookup_autograd(const at::Tensor& input, const at::Tensor& weight,
                           const CallOptions& options) {
  check_lookup_arguments(input, weight, options);
  return EmbeddingLookupFunction::apply(weight, input, options);
}

at::Tensor backward_autograd(const at::Tensor& grad_output, const at::Tensor& input,
                             c10::SymInt num_weights, const CallOptions& options) {
  check_backward_arguments(grad_output, input, num_weights, options);
  return EmbeddingBackwardFunction::apply(grad_output, input, num_weights, options);
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
                       const CallOptions& options) {
  check_lookup_arguments(input, weight, options);
  return at::empty_symint(lookup_shape(input.sym_sizes(), weight.sym_size(1)), weight.options());
}

at::Tensor backward_meta(const at::Tensor& grad_output, const at::Tensor& input,
                         c10::SymInt num_weights, const CallOptions& options) {
  check_backward_arguments(grad_output, input, num_weights, options);
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

// One registration list per dispatch key: the lists name the same operators on purpose.
TORCH_LIBRARY_IMPL(unit_scaling, Autograd, m) {
  namespace d = unit_scaling::detail;
  m.impl("embedding_lookup", d::kernel_with_options<&d::lookup_autograd>());
  m.impl("embedding_backward", d::kernel_with_options<&d::backward_autograd>());
  m.impl("_scaled_embedding_backward", &d::scaled_backward_autograd);
  m.impl("embedding_renorm_", &d::renorm_autograd);
}

// Under vmap too: the ATen operators of the scaled lookup batch themselves (no per-slice loop).
TORCH_LIBRARY_IMPL(unit_scaling, CompositeImplicitAutograd, m) {
  namespace d = unit_scaling::detail;
  m.impl("_embedding_double_backward", d::kernel_with_options<&d::double_backward>());
}
TORCH_LIBRARY_IMPL(unit_scaling, FuncTorchBatchedDecomposition, m) {
  namespace d = unit_scaling::detail;
  m.impl("_embedding_double_backward", d::kernel_with_options<&d::double_backward>());
}

TORCH_LIBRARY_IMPL(unit_scaling, Meta, m) {
  namespace d = unit_scaling::detail;
  m.impl("embedding_lookup", d::kernel_with_options<&d::lookup_meta>());
  m.impl("embedding_backward", d::kernel_with_options<&d::backward_meta>());
  m.impl("_scaled_embedding_backward", &d::scaled_backward_meta);
  m.impl("embedding_renorm_", &d::renorm_meta);
}
