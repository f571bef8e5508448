// A backend's operators, built from its device functions, so that every backend has the same
// checks, the same order (validate everything, then write) and the same unit scale.
//
// A backend is a struct of static device functions (see cpu.cpp, aten_fallback.cpp, cuda.cpp):
//   static at::Tensor gather(const at::Tensor& weight, const at::Tensor& indices);
//       the lookup weight[indices], shape indices.shape + (D,)
//   static at::Tensor scaled_backward(const at::Tensor& grad_output, const at::Tensor& indices,
//                                     int64_t num_weights, int64_t padding_row, double scale);
//       scale * the scatter-sum of grad_output's rows (padding_row < 0: none)
//   static void renorm_rows(const at::Tensor& weight, const at::Tensor& indices,
//                           double max_norm, double norm_type);
//       the in-place max_norm renorm of the referenced rows
//   static int64_t first_bad_index(const at::Tensor& indices, int64_t num_rows);
//       the first position whose index lies outside [0, num_rows), or -1; needed only when a
//       device function above leaves the index check to its entry point
//   static constexpr IndexChecks kChecksIndices;
//       which device functions validate the index values themselves (before they write
//       anything the caller can see); the entry point checks for all the others
// `indices` is always the contiguous input. register_backend<Backend>(m) registers the four
// operators under the library's dispatch key.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/library.h>

#include <cmath>

#include "embedding_checks.h"
#include "unit_scale.h"

namespace unit_scaling::detail {

struct IndexChecks {
  bool gather;
  bool scaled_backward;
  bool renorm_rows;
};

// The entry point's index check, for device functions that leave it to the entry point.
template <typename Backend>
void check_indices(const at::Tensor& indices, int64_t num_rows) {
  throw_if_bad_index(indices, Backend::first_bad_index(indices, num_rows), num_rows);
}

template <typename Backend>
struct EntryPoints {
  static constexpr IndexChecks kChecks = Backend::kChecksIndices;

  // embedding_lookup(input, weight, padding_idx?, *, token_multiplier, num_tokens).
  static at::Tensor lookup(const at::Tensor& input, const at::Tensor& weight,
                           std::optional<int64_t> padding_idx, double token_multiplier,
                           std::optional<int64_t> num_tokens) {
    check_lookup_arguments(input, weight, padding_idx, token_multiplier, num_tokens);
    const at::Tensor indices = input.contiguous();
    if constexpr (!kChecks.gather) check_indices<Backend>(indices, weight.size(0));
    return Backend::gather(weight, indices);
  }

  // embedding_backward(grad_output, input, num_weights, padding_idx?, *, token_multiplier,
  // num_tokens): the unit-scaled gradient.
  static at::Tensor backward(const at::Tensor& grad_output, const at::Tensor& input,
                             int64_t num_weights, std::optional<int64_t> padding_idx,
                             double token_multiplier, std::optional<int64_t> num_tokens) {
    check_backward_arguments(grad_output, input, num_weights, padding_idx, token_multiplier,
                             num_tokens);
    const int64_t padding = padding_row(padding_idx, num_weights);
    return scaled_gradient(grad_output, input, num_weights, padding,
                           unit_scale(num_weights, input.numel(), token_multiplier, num_tokens));
  }

  // _scaled_embedding_backward(grad_output, input, num_weights, padding_row, scale).
  static at::Tensor scaled_backward(const at::Tensor& grad_output, const at::Tensor& input,
                                    int64_t num_weights, int64_t padding_row, double scale) {
    check_scaled_backward_arguments(grad_output, input, num_weights, padding_row, scale);
    return scaled_gradient(grad_output, input, num_weights, padding_row, scale);
  }

  // embedding_renorm_(weight!, input, max_norm, norm_type): atomic, bumps weight's version.
  static void renorm(const at::Tensor& weight, const at::Tensor& input, double max_norm,
                     double norm_type) {
    check_renorm_arguments(weight, input, max_norm, norm_type);
    const at::Tensor indices = input.contiguous();
    if constexpr (!kChecks.renorm_rows) {
      check_indices<Backend>(indices, weight.size(0));
      if (std::isinf(max_norm)) return;  // nothing can exceed +inf
    }
    // (A backend that checks indices itself is called for max_norm = +inf too: it validates
    // them and changes nothing.)
    if (indices.numel() == 0) return;
    Backend::renorm_rows(weight, indices, max_norm, norm_type);
    if (!weight.is_inference() && !std::isinf(max_norm)) {
      torch::autograd::impl::bump_version(weight);
    }
  }

 private:
  static at::Tensor scaled_gradient(const at::Tensor& grad_output, const at::Tensor& input,
                                    int64_t num_weights, int64_t padding_row, double scale) {
    const at::Tensor indices = input.contiguous();
    if constexpr (!kChecks.scaled_backward) check_indices<Backend>(indices, num_weights);
    return Backend::scaled_backward(grad_output, indices, num_weights, padding_row, scale);
  }
};

// The table of device operators: each name with its entry point. It is the only list of them in
// C++ (the tests' AtenFallbackRoute reads it back from the dispatcher: the unit_scaling
// operators with a CPU kernel); tests/python/backend_axis.py's DEVICE_OPERATORS mirrors it.
template <typename Backend>
void register_backend(torch::Library& m) {
  using Entry = EntryPoints<Backend>;
  m.impl("embedding_lookup", &Entry::lookup);
  m.impl("embedding_backward", &Entry::backward);
  m.impl("_scaled_embedding_backward", &Entry::scaled_backward);
  m.impl("embedding_renorm_", &Entry::renorm);
}

}  // namespace unit_scaling::detail
