// Typed handles to the unit_scaling::* operators, for calling them through the dispatcher
// (so autograd, Meta/fake tensors and tracing all see the same ops as Python does).
#pragma once

#include <ATen/core/dispatch/Dispatcher.h>

#include <optional>

namespace unit_scaling::detail {

// Callers cache the result in a function-local static (one per operator).
template <typename Signature>
c10::TypedOperatorHandle<Signature> find_operator(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").template typed<Signature>();
}

// The last two arguments of embedding, lookup and backward: token_multiplier, num_tokens.
using EmbeddingSignature = at::Tensor(const at::Tensor&, const at::Tensor&,
                                      std::optional<c10::SymInt>, std::optional<double>, double,
                                      bool, bool, double, std::optional<c10::SymInt>);
using LookupSignature = at::Tensor(const at::Tensor&, const at::Tensor&, std::optional<c10::SymInt>,
                                   double, std::optional<c10::SymInt>);
using BackwardSignature = at::Tensor(const at::Tensor&, const at::Tensor&, c10::SymInt,
                                     std::optional<c10::SymInt>, double,
                                     std::optional<c10::SymInt>);
using ScaledBackwardSignature = at::Tensor(const at::Tensor&, const at::Tensor&, c10::SymInt,
                                           c10::SymInt, double);
using RenormSignature = void(const at::Tensor&, const at::Tensor&, double, double);
using ScaleSignature = at::Tensor(const at::Tensor&, double);

inline const c10::TypedOperatorHandle<EmbeddingSignature>& embedding_op() {
  static const auto handle = find_operator<EmbeddingSignature>("unit_scaling::embedding");
  return handle;
}
inline const c10::TypedOperatorHandle<LookupSignature>& lookup_op() {
  static const auto handle = find_operator<LookupSignature>("unit_scaling::embedding_lookup");
  return handle;
}
inline const c10::TypedOperatorHandle<BackwardSignature>& backward_op() {
  static const auto handle = find_operator<BackwardSignature>("unit_scaling::embedding_backward");
  return handle;
}
inline const c10::TypedOperatorHandle<ScaledBackwardSignature>& scaled_backward_op() {
  static const auto handle =
      find_operator<ScaledBackwardSignature>("unit_scaling::_scaled_embedding_backward");
  return handle;
}
inline const c10::TypedOperatorHandle<RenormSignature>& renorm_op() {
  static const auto handle = find_operator<RenormSignature>("unit_scaling::embedding_renorm_");
  return handle;
}

}  // namespace unit_scaling::detail
