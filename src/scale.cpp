// scale_fwd / scale_bwd: operators with autograd Functions, each scaling in one direction only.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>
#include <unit_scaling/scale.h>

#include "embedding_checks.h"
#include "operators.h"

namespace unit_scaling {
namespace {

using detail::find_operator;
using detail::ScaleSignature;
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

const c10::TypedOperatorHandle<ScaleSignature>& scale_fwd_op() {
  static const auto handle = find_operator<ScaleSignature>("unit_scaling::scale_fwd");
  return handle;
}
const c10::TypedOperatorHandle<ScaleSignature>& scale_bwd_op() {
  static const auto handle = find_operator<ScaleSignature>("unit_scaling::scale_bwd");
  return handle;
}

at::Tensor scale_fwd_kernel(const at::Tensor& x, double scale) {
  detail::check_scale_arguments(x, scale, /*forward=*/true);
  return x * scale;
}
at::Tensor scale_bwd_kernel(const at::Tensor& x, double scale) {
  detail::check_scale_arguments(x, scale, /*forward=*/false);
  return x.clone();
}

// Forward x * scale; the gradient passes through unchanged.
class ScaleForwardOnly : public torch::autograd::Function<ScaleForwardOnly> {
 public:
  static at::Tensor forward(AutogradContext*, const at::Tensor& x, double scale) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return scale_fwd_op().call(x, scale);
  }
  static tensor_list backward(AutogradContext*, tensor_list grads) {
    return {grads[0], at::Tensor()};
  }
};

// Forward a copy of x; the gradient is multiplied by scale (an ATen mul: differentiable again).
class ScaleBackwardOnly : public torch::autograd::Function<ScaleBackwardOnly> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, double scale) {
    at::AutoDispatchBelowADInplaceOrView guard;
    ctx->saved_data["scale"] = scale;
    return scale_bwd_op().call(x, scale);
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    return {grads[0] * ctx->saved_data["scale"].toDouble(), at::Tensor()};
  }
};

// The checks come first in every kernel, so each way in raises the same error.
at::Tensor scale_fwd_autograd(const at::Tensor& x, double scale) {
  detail::check_scale_arguments(x, scale, /*forward=*/true);
  return ScaleForwardOnly::apply(x, scale);
}
at::Tensor scale_bwd_autograd(const at::Tensor& x, double scale) {
  detail::check_scale_arguments(x, scale, /*forward=*/false);
  return ScaleBackwardOnly::apply(x, scale);
}

}  // namespace

// The dispatcher rejects an undefined tensor with a generic error; check first.
at::Tensor scale_fwd(const at::Tensor& x, double scale) {
  detail::check_scale_arguments(x, scale, /*forward=*/true);
  return scale_fwd_op().call(x, scale);
}

at::Tensor scale_bwd(const at::Tensor& x, double scale) {
  detail::check_scale_arguments(x, scale, /*forward=*/false);
  return scale_bwd_op().call(x, scale);
}

}  // namespace unit_scaling

TORCH_LIBRARY_IMPL(unit_scaling, CompositeExplicitAutograd, m) {
  m.impl("scale_fwd", &unit_scaling::scale_fwd_kernel);
  m.impl("scale_bwd", &unit_scaling::scale_bwd_kernel);
}

TORCH_LIBRARY_IMPL(unit_scaling, Autograd, m) {
  m.impl("scale_fwd", &unit_scaling::scale_fwd_autograd);
  m.impl("scale_bwd", &unit_scaling::scale_bwd_autograd);
}
