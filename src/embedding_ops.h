// The real (device) implementations behind the unit_scaling::* operators, called below
// autograd: CPU tensors go to the framework-free kernels, other devices to ATen ops with the
// same contract. torch_library.cpp registers them; the autograd Functions call the operators.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

namespace unit_scaling::detail {

// The unit scale s = sqrt(num_rows / N_eff) of a gradient summed from `count` unit-normal rows
// spread over num_rows rows, with N_eff = num_tokens if set, else count * token_multiplier
// (docs/SCALING.md). count == 0 has no gradient at all; it returns 0.
double unit_scale(int64_t num_rows, int64_t count, double token_multiplier = 1.0,
                  std::optional<int64_t> num_tokens = std::nullopt);

// Lookup; validates the index values (IndexError) before producing anything.
at::Tensor embedding_lookup(const at::Tensor& input, const at::Tensor& weight,
                            std::optional<int64_t> padding_idx, double token_multiplier,
                            std::optional<int64_t> num_tokens);

// Unit-scaled weight gradient (num_weights x D) of the lookup for grad_output.
at::Tensor embedding_backward(const at::Tensor& grad_output, const at::Tensor& input,
                              int64_t num_weights, std::optional<int64_t> padding_idx,
                              double token_multiplier, std::optional<int64_t> num_tokens);

// The gradient with an explicit scale: scale * scatter-sum of grad_output rows into num_weights
// rows, positions equal to padding_row (if >= 0) dropped. Validates the index values
// (IndexError) before allocating or writing; the other arguments must have been checked.
at::Tensor scaled_embedding_backward(const at::Tensor& grad_output, const at::Tensor& indices,
                                     int64_t num_weights, int64_t padding_row, double scale);

// In-place max_norm renormalisation of the rows `input` references; validates every index
// before writing anything and bumps weight's version counter.
void embedding_renorm_(const at::Tensor& weight, const at::Tensor& input, double max_norm,
                       double norm_type);

}  // namespace unit_scaling::detail
