// A backend's operators built from its device functions, so that every backend has the same
// checks, the same order (validate everything, then write) and the same scale:
//   at::Tensor scaled_backward(grad_output, input, num_weights, padding_row, scale)
//       the gradient; must validate the index values itself (before writing)
//   void renorm_rows(weight, contiguous valid indices, max_norm, norm_type)
//       the in-place max_norm renorm of the referenced rows
//   at::Tensor gather(weight, contiguous valid indices)
//       the lookup, shape indices.shape + (D,)
//   int64_t first_bad_index(contiguous indices, num_rows)
//       the first position whose index lies outside [0, num_rows), or -1
// register_backend() registers all four operators for a dispatch key.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/library.h>

#include <cmath>

#include "embedding_checks.h"
#include "unit_scale.h"

namespace unit_scaling::detail {

using ScaledBackwardFn = at::Tensor (*)(const at::Tensor&, const at::Tensor&, int64_t, int64_t,
                                        double);

// embedding_backward(grad_output, input, num_weights, padding_idx?, *, token_multiplier,
// num_tokens): the unit-scaled gradient.
template <ScaledBackwardFn scaled_backward>
at::Tensor embedding_backward_entry(const at::Tensor& grad_output, const at::Tensor& input,
                                    int64_t num_weights, std::optional<int64_t> padding_idx,
                                    double token_multiplier, std::optional<int64_t> num_tokens) {
  const int64_t padding = check_backward_arguments(grad_output, input, num_weights, padding_idx,
                                                   token_multiplier, num_tokens);
  return scaled_backward(grad_output, input, num_weights, padding,
                         unit_scale(num_weights, input.numel(), token_multiplier, num_tokens));
}

// _scaled_embedding_backward(grad_output, input, num_weights, padding_row, scale).
template <ScaledBackwardFn scaled_backward>
at::Tensor scaled_embedding_backward_entry(const at::Tensor& grad_output, const at::Tensor& input,
                                           int64_t num_weights, int64_t padding_row, double scale) {
  check_scaled_backward_arguments(grad_output, input, num_weights, padding_row, scale);
  return scaled_backward(grad_output, input, num_weights, padding_row, scale);
}

using RenormRowsFn = void (*)(const at::Tensor&, const at::Tensor&, double, double);
using FirstBadIndexFn = int64_t (*)(const at::Tensor&, int64_t);

// embedding_renorm_(weight!, input, max_norm, norm_type): atomic, bumps weight's version.
template <RenormRowsFn renorm_rows, FirstBadIndexFn first_bad>
void embedding_renorm_entry(const at::Tensor& weight, const at::Tensor& input, double max_norm,
                            double norm_type) {
  check_renorm_arguments(weight, input, max_norm, norm_type);
  const at::Tensor indices = input.contiguous();
  throw_if_bad_index(indices, first_bad(indices, weight.size(0)), weight.size(0));  // atomic
  if (std::isinf(max_norm) || indices.numel() == 0) return;  // nothing can exceed +inf
  renorm_rows(weight, indices, max_norm, norm_type);
  if (!weight.is_inference()) torch::autograd::impl::bump_version(weight);
}

using GatherFn = at::Tensor (*)(const at::Tensor&, const at::Tensor&);

// embedding_lookup(input, weight, padding_idx?, *, token_multiplier, num_tokens).
template <GatherFn gather, FirstBadIndexFn first_bad>
at::Tensor embedding_lookup_entry(const at::Tensor& input, const at::Tensor& weight,
                                  std::optional<int64_t> padding_idx, double token_multiplier,
                                  std::optional<int64_t> num_tokens) {
  check_lookup_arguments(input, weight, padding_idx, token_multiplier, num_tokens);
  const at::Tensor indices = input.contiguous();
  throw_if_bad_index(indices, first_bad(indices, weight.size(0)), weight.size(0));
  return gather(weight, indices);
}

template <GatherFn gather, ScaledBackwardFn scaled_backward, RenormRowsFn renorm_rows,
          FirstBadIndexFn first_bad>
void register_backend(torch::Library& m) {
  m.impl("embedding_lookup", &embedding_lookup_entry<gather, first_bad>);
  m.impl("embedding_backward", &embedding_backward_entry<scaled_backward>);
  m.impl("_scaled_embedding_backward", &scaled_embedding_backward_entry<scaled_backward>);
  m.impl("embedding_renorm_", &embedding_renorm_entry<renorm_rows, first_bad>);
}

}  // namespace unit_scaling::detail
