// Unit-scaled embedding: a drop-in for torch::nn::functional::embedding whose weight gradient is
// multiplied by sqrt(V / N) (V = weight.size(0) rows, N = input.numel() lookups), so that it has
// about unit scale at initialisation whatever the vocabulary and batch size.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/options/embedding.h>
#include <unit_scaling/export.h>
#include <unit_scaling/grad_scale.h>

#include <optional>
#include <type_traits>

namespace unit_scaling::functional {

using EmbeddingFuncOptions = torch::nn::functional::EmbeddingFuncOptions;

// out[..., :] = weight[input[...], :], shape input.shape + (D,), dtype/device of weight.
//
// input: int32 or int64 indices, any shape (0-d and empty included), each in [0, V).
// weight: 2-D float32/float64/float16/bfloat16 table (V, D), any strides.
// options.padding_idx: in [-V, V), negative wraps; those positions get no gradient.
// options.max_norm / norm_type (both > 0, inf allowed): before the lookup every distinct
//   referenced row with p-norm > max_norm is rescaled in place in `weight` to max_norm.
// options.scale_grad_by_freq / sparse: not supported by unit scaling (ValueError).
//
// Gradient: weight.grad[r] = sqrt(V/N) * sum of grad_out over positions p with input[p] == r
// (padding excluded), accumulated in float32 (float64 for double), deterministic; all zeros when
// N == 0. No gradient for input. Double backward is supported.
//
// Errors are atomic: every argument and every index is checked before anything is written, so
// after an error `weight` is bit-for-bit unchanged. Bad index: c10::IndexError (on the CPU, and
// on CUDA in the default build, whose ATen fallback reads one status back; in a build with the
// CUDA backend, -DUNIT_SCALING_CUDA=ON, CUDA tensors get a sync-free device-side assertion by
// default and max_norm writes nothing: index_check_policy.h); bad option value or shape:
// c10::ValueError; bad dtype/layout: c10::TypeError (Python's IndexError, ValueError,
// TypeError).
//
// Example:
//   namespace F = unit_scaling::functional;
//   auto x = F::embedding(tokens, weight, F::EmbeddingFuncOptions().padding_idx(0));
//   x.backward(torch::randn_like(x));  // weight.grad() ~ unit scale
//
// grad_scale (an extension, docs/SCALING.md): the token count N of the scale for data
// parallelism and gradient accumulation; the default is N = input.numel().
UNIT_SCALING_API at::Tensor embedding(const at::Tensor& input, const at::Tensor& weight,
                                      const EmbeddingFuncOptions& options = {},
                                      const GradScaleOptions& grad_scale = {});

// The checks embedding() makes of its options for a table of num_embeddings rows, without a
// call and without tensors: c10::ValueError for what embedding() would reject (padding_idx
// outside [-V, V), max_norm or norm_type not > 0, scale_grad_by_freq, sparse, a bad token
// count), with the same message. For validating a configuration up front (the report tool's
// command line).
UNIT_SCALING_API void check_options(int64_t num_embeddings,
                                    const EmbeddingFuncOptions& options = {},
                                    const GradScaleOptions& grad_scale = {});

// The unit scale s = sqrt(V / N_eff) by which the weight gradient of a call with num_lookups
// lookups into a table of num_embeddings rows is multiplied (N_eff: grad_scale's token count,
// docs/SCALING.md; a call without lookups counts 1); c10::ValueError as check_options for a bad
// token count.
UNIT_SCALING_API double unit_scale(int64_t num_embeddings, int64_t num_lookups,
                                   const GradScaleOptions& grad_scale = {});

// The row options.padding_idx names in a table of num_embeddings rows: in [0, num_embeddings)
// (a negative padding_idx counts from the end), -1 without one; c10::ValueError as
// check_options for one outside [-num_embeddings, num_embeddings).
UNIT_SCALING_API int64_t padding_row(int64_t num_embeddings, const EmbeddingFuncOptions& options);

namespace detail {
// Both forms' one call of the operator, with the options as its scalars.
UNIT_SCALING_API at::Tensor embedding_call(const at::Tensor& input, const at::Tensor& weight,
                                           std::optional<int64_t> padding_idx,
                                           std::optional<double> max_norm, double norm_type,
                                           bool scale_grad_by_freq, bool sparse,
                                           const GradScaleOptions& grad_scale);
}  // namespace detail

// Positional form mirroring the Python signature of unit_scaling.functional.embedding:
//   embedding(input, weight, /*padding_idx=*/0, /*max_norm=*/1.0, /*norm_type=*/2.0).
// A template on its third argument so that `embedding(input, weight, {})` picks the options
// overload (a non-template wins a tie), while `embedding(input, weight, {}, 1.0)` still means
// "no padding_idx" (a braced list deduces nothing, so the default type applies).
template <typename PaddingIdx = std::optional<int64_t>,
          typename = std::enable_if_t<std::is_convertible_v<PaddingIdx, std::optional<int64_t>> &&
                                      !std::is_same_v<std::decay_t<PaddingIdx>, bool>>>
at::Tensor embedding(const at::Tensor& input, const at::Tensor& weight, PaddingIdx padding_idx,
                     std::optional<double> max_norm = {}, double norm_type = 2.0,
                     bool scale_grad_by_freq = false, bool sparse = false) {
  return detail::embedding_call(input, weight, std::optional<int64_t>(padding_idx), max_norm,
                                norm_type, scale_grad_by_freq, sparse, GradScaleOptions());
}

}  // namespace unit_scaling::functional
