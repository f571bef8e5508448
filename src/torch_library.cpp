// The unit_scaling operator library: schemas, the device kernels, and the composite `embedding`
// that validates, renorms and looks up. Autograd and Meta kernels live in
// embedding_autograd.cpp and scale.cpp. Python reaches all of this as torch.ops.unit_scaling.*.
//
// Operators:
//   embedding(input, weight!, padding_idx?, max_norm?, norm_type, scale_grad_by_freq, sparse,
//             *, token_multiplier, num_tokens)   (the last two: docs/SCALING.md)
//       the public op (CompositeImplicitAutograd): metadata checks, then embedding_renorm_ when
//       max_norm is set (the only mutation, hence `Tensor(a!) weight`), then embedding_lookup.
//   embedding_lookup(input, weight, padding_idx?)          functional forward, differentiable
//   embedding_backward(grad_output, input, num_weights, padding_idx?)  the unit-scaled gradient
//   embedding_renorm_(weight!, input, max_norm, norm_type) in-place max_norm, not differentiable
//   scale_fwd(x, scale), scale_bwd(x, scale)               the scaling primitives
#include <ATen/ATen.h>
#include <torch/library.h>

#include "embedding_checks.h"
#include "operators.h"

namespace unit_scaling::detail {
namespace {

// Runs on FakeTensors too (torch.compile decomposes this op): only metadata is read, and sizes
// stay symbolic. V is made concrete only when padding_idx needs a range check and a wrap;
// the token count and the batch shape are never guarded on.
at::Tensor embedding_composite(const at::Tensor& input, const at::Tensor& weight,
                               std::optional<c10::SymInt> padding_idx,
                               std::optional<double> max_norm, double norm_type,
                               bool scale_grad_by_freq, bool sparse, double token_multiplier,
                               std::optional<int64_t> num_tokens) {
  check_input_and_weight(input, weight);
  check_token_count(token_multiplier, num_tokens);
  check_options(EmbeddingFuncOptions()
                    .max_norm(max_norm)
                    .norm_type(norm_type)
                    .scale_grad_by_freq(scale_grad_by_freq)
                    .sparse(sparse));
  std::optional<c10::SymInt> row;
  if (padding_idx) {
    const int64_t num_rows = weight.sym_size(0).guard_int(__FILE__, __LINE__);
    row = c10::SymInt(padding_row(padding_idx->guard_int(__FILE__, __LINE__), num_rows));
  }
  if (max_norm) renorm_op().call(weight, input, *max_norm, norm_type);
  return lookup_op().call(input, weight, row, token_multiplier, num_tokens);
}

}  // namespace
}  // namespace unit_scaling::detail

TORCH_LIBRARY(unit_scaling, m) {
  m.def(
      "embedding(Tensor input, Tensor(a!) weight, SymInt? padding_idx=None, float? max_norm=None, "
      "float norm_type=2.0, bool scale_grad_by_freq=False, bool sparse=False, *, "
      "float token_multiplier=1.0, int? num_tokens=None) -> Tensor");
  m.def(
      "embedding_lookup(Tensor input, Tensor weight, SymInt? padding_idx=None, *, "
      "float token_multiplier=1.0, int? num_tokens=None) -> Tensor");
  m.def(
      "embedding_backward(Tensor grad_output, Tensor input, SymInt num_weights, "
      "SymInt? padding_idx=None, *, float token_multiplier=1.0, int? num_tokens=None) -> Tensor");
  // Internal (vocab-parallel backward): an explicit scale and padding row, not differentiable.
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
