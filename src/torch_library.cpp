// The unit_scaling operator library: schemas, the device kernels, and the composite `embedding`
// that validates, renorms and looks up. Autograd and Meta kernels live in
// embedding_autograd.cpp and scale.cpp. Python reaches all of this as torch.ops.unit_scaling.*.
//
// Operators (token_multiplier / num_tokens: the token count of the scale, docs/SCALING.md):
//   embedding(input, weight!, padding_idx?, max_norm?, norm_type, scale_grad_by_freq, sparse,
//             *, token_multiplier, num_tokens)
//       the public op (CompositeImplicitAutograd): metadata checks, then embedding_renorm_ when
//       max_norm is set (the only mutation, hence `Tensor(a!) weight`), then embedding_lookup.
//   embedding_lookup(input, weight, padding_idx?, *, token_multiplier, num_tokens)
//       functional forward, differentiable
//   embedding_backward(grad_output, input, num_weights, padding_idx?, *, token_multiplier,
//                      num_tokens)                       the unit-scaled gradient, differentiable
//   _scaled_embedding_backward(grad_output, input, num_weights, padding_row, scale)
//       internal: an explicit scale and wrapped padding row (-1: none), differentiable
//   embedding_renorm_(weight!, input, max_norm, norm_type) in-place max_norm, not differentiable
//   scale_fwd(x, scale), scale_bwd(x, scale)               the scaling primitives
// Elsewhere: _index_check_policy / _set_index_check_policy (index_check_policy.cpp) and the
// vocab-parallel operators (distributed/).
#include <ATen/ATen.h>
#include <torch/library.h>

#include "embedding_checks.h"
#include "operators.h"

namespace unit_scaling::detail {
namespace {

// Runs on FakeTensors too (torch.compile decomposes this op): only metadata is read, and sizes
// stay symbolic -- no guard on V, the batch shape or num_tokens. padding_idx goes to the lookup
// as given (it wraps a negative one itself).
at::Tensor embedding_composite(const at::Tensor& input, const at::Tensor& weight,
                               std::optional<c10::SymInt> padding_idx,
                               std::optional<double> max_norm, double norm_type,
                               bool scale_grad_by_freq, bool sparse, double token_multiplier,
                               std::optional<c10::SymInt> num_tokens) {
  check_lookup_arguments(input, weight, padding_idx, token_multiplier, num_tokens);
  check_options(max_norm, norm_type, scale_grad_by_freq, sparse);
  if (max_norm) renorm_op().call(weight, input, *max_norm, norm_type);
  return lookup_op().call(input, weight, padding_idx, token_multiplier, num_tokens);
}

}  // namespace
}  // namespace unit_scaling::detail

TORCH_LIBRARY(unit_scaling, m) {
  m.def(
      "embedding(Tensor input, Tensor(a!) weight, SymInt? padding_idx=None, float? max_norm=None, "
      "float norm_type=2.0, bool scale_grad_by_freq=False, bool sparse=False, *, "
      "float token_multiplier=1.0, SymInt? num_tokens=None) -> Tensor");
  m.def(
      "embedding_lookup(Tensor input, Tensor weight, SymInt? padding_idx=None, *, "
      "float token_multiplier=1.0, SymInt? num_tokens=None) -> Tensor");
  m.def(
      "embedding_backward(Tensor grad_output, Tensor input, SymInt num_weights, "
      "SymInt? padding_idx=None, *, float token_multiplier=1.0, SymInt? num_tokens=None) -> "
      "Tensor");
  // Internal (vocab-parallel backward): an explicit scale and padding row.
  m.def(
      "_scaled_embedding_backward(Tensor grad_output, Tensor input, SymInt num_weights, "
      "SymInt padding_row, float scale) -> Tensor");
  m.def(
      "embedding_renorm_(Tensor(a!) weight, Tensor input, float max_norm, float norm_type) -> ()");
  m.def("scale_fwd(Tensor x, float scale) -> Tensor");
  m.def("scale_bwd(Tensor x, float scale) -> Tensor");
}

TORCH_LIBRARY_IMPL(unit_scaling, CompositeImplicitAutograd, m) {
  m.impl("embedding", &unit_scaling::detail::embedding_composite);
}
