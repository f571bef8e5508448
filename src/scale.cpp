// scale_fwd / scale_bwd as autograd Functions: each scales in exactly one direction.
#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>
#include <unit_scaling/scale.h>

namespace unit_scaling {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

class ScaleForwardOnly : public torch::autograd::Function<ScaleForwardOnly> {
 public:
  static at::Tensor forward(AutogradContext*, const at::Tensor& x, double scale) {
    return x * scale;
  }
  static tensor_list backward(AutogradContext*, tensor_list grads) {
    return {grads[0], at::Tensor()};
  }
};

class ScaleBackwardOnly : public torch::autograd::Function<ScaleBackwardOnly> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& x, double scale) {
    ctx->saved_data["scale"] = scale;
    return x.clone();
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    return {grads[0] * ctx->saved_data["scale"].toDouble(), at::Tensor()};
  }
};

}  // namespace

at::Tensor scale_fwd(const at::Tensor& x, double scale) {
  return ScaleForwardOnly::apply(x, scale);
}

at::Tensor scale_bwd(const at::Tensor& x, double scale) {
  return ScaleBackwardOnly::apply(x, scale);
}

}  // namespace unit_scaling
