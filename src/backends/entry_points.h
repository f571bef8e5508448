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
//       the first position whose index lies outside [0, num_rows), or -1; needed only when the
//       device functions leave the index check to their entry points
//   static constexpr bool kChecksIndices;
//       true: every device function above validates the index values itself, before it writes
//       anything the caller can see, as the index-check policy says (CUDA:
//       index_check_policy.h); false: each entry point checks them once, with first_bad_index,
//       before calling the device function, which may then trust them
// `indices` is always the contiguous input. The options block (call_options.h) stops here: the
// entry points check it and resolve it into what the device functions take (the wrapped padding
// row, the unit scale). register_backend<Backend>(m) registers the four operators under the
// library's dispatch key.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/csrc/autograd/variable.h>
#include <torch/library.h>

#include <cmath>

#include "call_options.h"
#include "embedding_checks.h"
#include "unit_scale.h"

namespace unit_scaling::detail {

// The entry point's index check, for device functions that leave it to the entry point.
template <typename Backend>
void check_indices(const at::Tensor& indices, int64_t num_rows) {
  if constexpr (!Backend::kChecksIndices) {
    throw_if_bad_index(indices, Backend::first_bad_index(indices, num_rows), num_rows);
  }
}

template <typename Backend>
struct EntryPoints {
  // embedding_lookup(input, weight, <options>).
  static at::Tensor lookup(const at::Tensor& input, const at::Tensor& weight,
                           const CallOptions& options) {
    check_lookup_arguments(input, weight, options);
    const at::Tensor indices = input.contiguous();
    check_indices<Backend>(indices, weight.size(0));
    return Backend::gather(weight, indices);
  }

  // embedding_backward(grad_output, input, num_weights, <options>): the unit-scaled gradient.
  static at::Tensor backward(const at::Tensor& grad_output, const at::Tensor& input,
                             c10::SymInt num_weights, const CallOptions& options) {
    check_backward_arguments(grad_output, input, num_weights, options);
    const int64_t rows = num_weights.expect_int();
    return scaled_gradient(grad_output, input, rows, padding_row_or_none(options.padding_idx, rows),
                           unit_scale(rows, input.numel(), options));
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
    check_indices<Backend>(indices, weight.size(0));
    // A backend that checks indices itself is called for max_norm = +inf too: it validates them
    // and changes nothing.
    if (!Backend::kChecksIndices && std::isinf(max_norm)) return;  // nothing exceeds +inf
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
    check_indices<Backend>(indices, num_weights);
    return Backend::scaled_backward(grad_output, indices, num_weights, padding_row, scale);
  }
};

// The table of device operators: each name with its entry point. It is the only list of them in
// C++ (the tests' AtenFallbackRoute reads it back from the dispatcher: the unit_scaling
// operators with a CPU kernel); tests/python/backend_axis.py's DEVICE_OPERATORS mirrors it.
template <typename Backend>
void register_backend(torch::Library& m) {
  using Entry = EntryPoints<Backend>;
  m.impl("embedding_lookup", kernel_with_options<&Entry::lookup>());
  m.impl("embedding_backward", kernel_with_options<&Entry::backward>());
  m.impl("_scaled_embedding_backward", &Entry::scaled_backward);
  m.impl("embedding_renorm_", &Entry::renorm);
}

}  // namespace unit_scaling::detail
