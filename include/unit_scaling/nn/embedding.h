// unit_scaling::nn::Embedding: the module form of unit_scaling::functional::embedding, built
// from torch::nn::EmbeddingOptions like torch::nn::Embedding. Differences from PyTorch's module:
// the weight starts as N(0, 1) (unit scale) and the backward is unit-scaled (see functional.h);
// clone() is a deep copy that keeps requires_grad, also for a module built from a given table.
//
// Example:
// clang-format off
//   using unit_scaling::nn::Embedding;
//   Embedding embed(unit_scaling::nn::EmbeddingOptions(50257, 768).padding_idx(0));
//   auto x = embed(tokens);                            // (B, T, 768)
//   auto frozen = Embedding::from_pretrained(table);   // requires_grad = false
// clang-format on
#pragma once

#include <torch/nn/cloneable.h>
#include <torch/nn/options/embedding.h>
#include <torch/nn/pimpl.h>
#include <unit_scaling/export.h>
#include <unit_scaling/grad_scale.h>

#include <ostream>

namespace unit_scaling::nn {

using EmbeddingOptions = torch::nn::EmbeddingOptions;
using EmbeddingFromPretrainedOptions = torch::nn::EmbeddingFromPretrainedOptions;

class UNIT_SCALING_API EmbeddingImpl : public torch::nn::Cloneable<EmbeddingImpl> {
 public:
  EmbeddingImpl(int64_t num_embeddings, int64_t embedding_dim)
      : EmbeddingImpl(EmbeddingOptions(num_embeddings, embedding_dim)) {}
  // Checks the options (ValueError for a padding_idx outside [-V, V), max_norm/norm_type <= 0,
  // scale_grad_by_freq or sparse) and registers `weight`: options._weight if given (must be
  // V x D), otherwise a fresh table drawn by reset_parameters().
  // grad_scale_: the token count of the gradient's scale (docs/SCALING.md); default N.
  explicit EmbeddingImpl(EmbeddingOptions options_, GradScaleOptions grad_scale_ = {});

  void reset() override;
  // weight ~ N(0, 1), then the padding row (if any) zeroed.
  void reset_parameters();
  void pretty_print(std::ostream& stream) const override;
  // unit_scaling::functional::embedding(indices, weight, options of this module).
  at::Tensor forward(const at::Tensor& indices);

  EmbeddingOptions options;
  GradScaleOptions grad_scale;
  at::Tensor weight;
};

// Module holder, as TORCH_MODULE(Embedding) would declare it, plus from_pretrained (the same
// shape as torch::nn::Embedding, which needs the static member too).
class UNIT_SCALING_API Embedding : public torch::nn::ModuleHolder<EmbeddingImpl> {
 public:
  using torch::nn::ModuleHolder<EmbeddingImpl>::ModuleHolder;
  using Impl = EmbeddingImpl;

  // A module around `embeddings` (2-D, used as is: the padding row is NOT zeroed), frozen
  // (requires_grad = false) unless options.freeze(false).
  static Embedding from_pretrained(const at::Tensor& embeddings,
                                   const EmbeddingFromPretrainedOptions& options = {});
};

}  // namespace unit_scaling::nn
