#include <c10/util/Exception.h>
#include <unit_scaling/nn/embedding.h>

#include <utility>

#include "call_options.h"
#include "embedding_table.h"
#include "operators.h"

namespace unit_scaling::nn {

EmbeddingImpl::EmbeddingImpl(EmbeddingOptions options_, GradScaleOptions grad_scale_)
    : options(std::move(options_)), grad_scale(grad_scale_) {
  reset();  // NOLINT(clang-analyzer-optin.cplusplus.VirtualCall)
}

void EmbeddingImpl::reset() {
  const int64_t num_rows = options.num_embeddings();
  const int64_t padding_row =
      detail::check_module_options(options, grad_scale, {num_rows, options.embedding_dim()});
  weight = detail::register_table(*this, weight, options, num_rows, padding_row);
}

void EmbeddingImpl::reset_parameters() {
  detail::init_table(weight, options.padding_idx().value_or(-1));
}

void EmbeddingImpl::pretty_print(std::ostream& stream) const {
  stream << "unit_scaling::nn::Embedding(num_embeddings=" << options.num_embeddings()
         << ", embedding_dim=" << options.embedding_dim()
         << detail::non_default_options(detail::call_options(options, grad_scale)) << ")";
}

at::Tensor EmbeddingImpl::forward(const at::Tensor& indices) {
  return detail::call_embedding(indices, weight, detail::call_options(options, grad_scale));
}

Embedding Embedding::from_pretrained(const at::Tensor& embeddings,
                                     const EmbeddingFromPretrainedOptions& options) {
  detail::check_pretrained(embeddings, "from_pretrained's embeddings");
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
