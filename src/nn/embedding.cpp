#include <c10/util/Exception.h>
#include <unit_scaling/functional.h>
#include <unit_scaling/nn/embedding.h>

#include <utility>

#include "embedding_checks.h"
#include "embedding_table.h"

namespace unit_scaling::nn {

EmbeddingImpl::EmbeddingImpl(EmbeddingOptions options_, GradScaleOptions grad_scale_)
    : options(std::move(options_)), grad_scale(grad_scale_) {
  reset();  // NOLINT(clang-analyzer-optin.cplusplus.VirtualCall)
}

void EmbeddingImpl::reset() {
  const int64_t num_rows = options.num_embeddings();
  const int64_t padding_row = detail::check_module_options("Embedding", options, grad_scale,
                                                           {num_rows, options.embedding_dim()});
  weight = detail::register_table(*this, weight, options, num_rows, padding_row);
}

void EmbeddingImpl::reset_parameters() {
  detail::init_table(weight, options.padding_idx().value_or(-1));
}

void EmbeddingImpl::pretty_print(std::ostream& stream) const {
  stream << "unit_scaling::nn::Embedding(num_embeddings=" << options.num_embeddings()
         << ", embedding_dim=" << options.embedding_dim();
  if (options.padding_idx()) stream << ", padding_idx=" << *options.padding_idx();
  if (options.max_norm()) stream << ", max_norm=" << *options.max_norm();
  if (options.norm_type() != 2.0) stream << ", norm_type=" << options.norm_type();
  if (grad_scale.token_multiplier() != 1.0) {
    stream << ", token_multiplier=" << grad_scale.token_multiplier();
  }
  if (grad_scale.num_tokens()) stream << ", num_tokens=" << *grad_scale.num_tokens();
  stream << ")";
}

at::Tensor EmbeddingImpl::forward(const at::Tensor& indices) {
  return functional::detail::embedding_call(
      indices, weight, options.padding_idx(), options.max_norm(), options.norm_type(),
      options.scale_grad_by_freq(), options.sparse(), grad_scale);
}

Embedding Embedding::from_pretrained(const at::Tensor& embeddings,
                                     const EmbeddingFromPretrainedOptions& options) {
  TORCH_CHECK_VALUE(embeddings.defined() && embeddings.dim() == 2,
                    "unit_scaling Embedding: from_pretrained's embeddings must be 2-D, got ",
                    embeddings.defined() ? embeddings.sizes() : at::IntArrayRef{});
  Embedding module(EmbeddingOptions(embeddings.size(0), embeddings.size(1))
                       ._weight(embeddings)
                       .padding_idx(options.padding_idx())
                       .max_norm(options.max_norm())
                       .norm_type(options.norm_type())
                       .scale_grad_by_freq(options.scale_grad_by_freq())
                       .sparse(options.sparse()));
  module->weight.set_requires_grad(!options.freeze());
  return module;
}

}  // namespace unit_scaling::nn
