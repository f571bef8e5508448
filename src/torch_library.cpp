// The unit_scaling operator library: every schema, and the composites (CompositeImplicitAutograd:
// built from other operators, so autograd, FakeTensor tracing and torch.func see their parts).
// Python reaches all of this as torch.ops.unit_scaling.*. <options> is the block of
// call_options.h, the same for every operator that has it: torch's embedding arguments
// (padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse) and the token count
// (token_multiplier, num_tokens; docs/SCALING.md), validated in full by every one of them.
//
//   embedding(input, weight!, <options>)        the public op: checks, then embedding_renorm_
//       when max_norm is set (the only mutation, hence `Tensor(a!) weight`), then the lookup
//   embedding_lookup(input, weight, <options>)  the differentiable lookup (no renorm)
//   embedding_backward(grad_output, input, num_weights, <options>)
//       the unit-scaled gradient, differentiable
//   _embedding_double_backward(grad_grad_weight, input, <options>)
//       the gradient's own gradient: the scaled lookup s * ggW[input], padding positions zero
//   _check_embedding(input, weight, <options>)  embedding's checks alone (routes that do not
//       call embedding: torch.func, ONNX export)
//   _scaled_embedding_backward(grad_output, input, num_weights, padding_row, scale)
//       internal: an explicit scale and wrapped padding row (-1: none), differentiable
//   embedding_renorm_(weight!, input, max_norm, norm_type) in-place max_norm, not differentiable
//   scale_fwd(x, scale), scale_bwd(x, scale)               the scaling primitives
//   _check_module_options(num_embeddings, embedding_dim, _weight?, <options>), _check_pretrained
//       (embeddings): the modules' checks (embedding_table.h), for the Python module
//   _message_prefix(subject) -> str             the start of the library's messages
// Kernels: embedding_autograd.cpp (Autograd, Meta, the double backward), backends/ (devices),
// scale.cpp. Elsewhere: _index_check_policy / _set_index_check_policy (index_check_policy.cpp) and
// the vocab-parallel operators (distributed/vocab_shard_ops.cpp).
#include <ATen/ATen.h>
#include <torch/library.h>

#include "call_options.h"
#include "embedding_checks.h"
#include "embedding_table.h"
#include "kernels/messages.h"
#include "operators.h"

namespace unit_scaling::detail {
namespace {

// Runs on FakeTensors too (torch.compile decomposes this op): only metadata is read, and sizes
// stay symbolic -- no guard on V, the batch shape or num_tokens.
at::Tensor embedding_composite(const at::Tensor& input, const at::Tensor& weight,
                               const CallOptions& options) {
  check_lookup_arguments(input, weight, options);
  if (options.max_norm) renorm_op().call(weight, input, *options.max_norm, options.norm_type);
  return call_lookup(input, weight, options);
}

void check_embedding(const at::Tensor& input, const at::Tensor& weight,
                     const CallOptions& options) {
  check_lookup_arguments(input, weight, options);
}

void check_module(c10::SymInt num_embeddings, c10::SymInt embedding_dim,
                  const std::optional<at::Tensor>& weight, const CallOptions& options) {
  const int64_t rows = num_embeddings.guard_int(__FILE__, __LINE__);
  const int64_t dim = embedding_dim.guard_int(__FILE__, __LINE__);
  check_module_settings(rows, dim, options, weight.value_or(at::Tensor()), {rows, dim});
}

std::string message_prefix_of(const std::string& subject) {
  using kernels::Subject;
  for (const Subject s :
       {Subject::kEmbedding, Subject::kScaleFwd, Subject::kScaleBwd, Subject::kIndexCheckPolicy}) {
    if (subject == kernels::subject_name(s)) return kernels::message_prefix(s);
  }
  TORCH_CHECK_VALUE(false, kernels::message_prefix(), "no message subject '", subject, "'");
}

}  // namespace
}  // namespace unit_scaling::detail

TORCH_LIBRARY(unit_scaling, m) {
  using unit_scaling::detail::schema_with_options;
  m.def(schema_with_options("embedding(Tensor input, Tensor(a!) weight, ", ") -> Tensor").c_str());
  m.def(
      schema_with_options("embedding_lookup(Tensor input, Tensor weight, ", ") -> Tensor").c_str());
  m.def(schema_with_options(
            "embedding_backward(Tensor grad_output, Tensor input, SymInt num_weights, ",
            ") -> Tensor")
            .c_str());
  m.def(schema_with_options("_embedding_double_backward(Tensor grad_grad_weight, Tensor input, ",
                            ") -> Tensor")
            .c_str());
  m.def(schema_with_options("_check_embedding(Tensor input, Tensor weight, ", ") -> ()").c_str());
  m.def(
      "_scaled_embedding_backward(Tensor grad_output, Tensor input, SymInt num_weights, "
      "SymInt padding_row, float scale) -> Tensor");
  m.def(
      "embedding_renorm_(Tensor(a!) weight, Tensor input, float max_norm, float norm_type) -> ()");
  m.def("scale_fwd(Tensor x, float scale) -> Tensor");
  m.def("scale_bwd(Tensor x, float scale) -> Tensor");
  m.def(schema_with_options("_check_module_options(SymInt num_embeddings, SymInt embedding_dim, "
                            "Tensor? _weight, ",
                            ") -> ()")
            .c_str(),
        unit_scaling::detail::kernel_with_options<&unit_scaling::detail::check_module>());
  m.def("_check_pretrained(Tensor embeddings) -> ()", [](const at::Tensor& embeddings) {
    unit_scaling::detail::check_pretrained(embeddings, "from_pretrained's embeddings");
  });
  m.def("_message_prefix(str subject) -> str", &unit_scaling::detail::message_prefix_of);
}

TORCH_LIBRARY_IMPL(unit_scaling, CompositeImplicitAutograd, m) {
  namespace d = unit_scaling::detail;
  m.impl("embedding", d::kernel_with_options<&d::embedding_composite>());
  m.impl("_check_embedding", d::kernel_with_options<&d::check_embedding>());
}

// Under vmap too the checks decompose (reading the per-slice sizes of the batched tensors), as
// ATen's own composites do, instead of meeting vmap's fallback, which cannot batch an operator
// without outputs.
TORCH_LIBRARY_IMPL(unit_scaling, FuncTorchBatchedDecomposition, m) {
  namespace d = unit_scaling::detail;
  m.impl("_check_embedding", d::kernel_with_options<&d::check_embedding>());
}
