// Argument validation of unit-scaled embedding. Every check runs before anything is written,
// which is what makes the operation atomic. Errors use the c10 classes that PyTorch maps onto
// Python's IndexError / ValueError / TypeError, and each message names the argument.
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

namespace unit_scaling::detail {

// The option values, shared by the functional form and the module.
struct EmbeddingSettings {
  std::optional<int64_t> padding_idx;
  std::optional<double> max_norm;
  double norm_type = 2.0;
  bool scale_grad_by_freq = false;
  bool sparse = false;
};

// Checks the options against a table of num_rows rows (ValueError) and returns padding_idx
// wrapped into [0, num_rows), or -1 when there is none.
int64_t check_settings(const EmbeddingSettings& settings, int64_t num_rows);

// Checks dtypes, layouts, shapes and devices of input and weight, the options and the output
// size (everything but the index values). Returns the wrapped padding row (-1 if none).
int64_t check_embedding_arguments(const at::Tensor& input, const at::Tensor& weight,
                                  const EmbeddingSettings& settings);

// IndexError unless every value of `indices` (contiguous, checked dtype) is in [0, num_rows);
// the message names the first bad value, its position in the input and num_rows.
void check_indices_in_range(const at::Tensor& indices, int64_t num_rows);

}  // namespace unit_scaling::detail
