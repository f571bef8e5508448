// Handles to the unit_scaling::* operators, for calling them through the dispatcher (so
// autograd, Meta/fake tensors and tracing all see the same ops as Python does). The operators
// that end with the options block are called with call_with_options (call_options.h); the
// others through typed handles.
#pragma once

#include <ATen/core/dispatch/Dispatcher.h>

#include "call_options.h"

namespace unit_scaling::detail {

// Callers cache the result in a function-local static (one per operator).
inline c10::OperatorHandle find_operator(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "");
}
template <typename Signature>
c10::TypedOperatorHandle<Signature> find_operator(const char* name) {
  return find_operator(name).typed<Signature>();
}

// ---- with the options block ----------------------------------------------------------------
// (One cached handle per operator: the getters repeat their shape on purpose.)
inline const c10::OperatorHandle& embedding_op() {
  static const auto handle = find_operator("unit_scaling::embedding");
  return handle;
}
inline const c10::OperatorHandle& lookup_op() {
  static const auto handle = find_operator("unit_scaling::embedding_lookup");
  return handle;
}
inline const c10::OperatorHandle& backward_op() {
  static const auto handle = find_operator("unit_scaling::embedding_backward");
  return handle;
}
inline const c10::OperatorHandle& double_backward_op() {
  static const auto handle = find_operator("unit_scaling::_embedding_double_backward");
  return handle;
}

// The calls, options last, as the C++ functions of the schemas.
inline at::Tensor call_embedding(const at::Tensor& input, const at::Tensor& weight,
                                 const CallOptions& options = {}) {
  return call_with_options(embedding_op(), options, input, weight).toTensor();
}
inline at::Tensor call_lookup(const at::Tensor& input, const at::Tensor& weight,
                              const CallOptions& options = {}) {
  return call_with_options(lookup_op(), options, input, weight).toTensor();
}
inline at::Tensor call_backward(const at::Tensor& grad_output, const at::Tensor& input,
                                const c10::SymInt& num_weights, const CallOptions& options = {}) {
  return call_with_options(backward_op(), options, grad_output, input, num_weights).toTensor();
}
inline at::Tensor call_double_backward(const at::Tensor& grad_grad_weight, const at::Tensor& input,
                                       const CallOptions& options = {}) {
  return call_with_options(double_backward_op(), options, grad_grad_weight, input).toTensor();
}

// ---- typed ---------------------------------------------------------------------------------
using ScaledBackwardSignature = at::Tensor(const at::Tensor&, const at::Tensor&, c10::SymInt,
                                           c10::SymInt, double);
using RenormSignature = void(const at::Tensor&, const at::Tensor&, double, double);
using ScaleSignature = at::Tensor(const at::Tensor&, double);

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
