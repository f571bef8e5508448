#include "embedding_table.h"

#include <c10/util/Exception.h>
#include <torch/nn/init.h>

#include "embedding_checks.h"
#include "kernels/messages.h"

namespace unit_scaling::detail {

void check_module_settings(int64_t num_embeddings, int64_t embedding_dim,
                           const CallOptions& options, const at::Tensor& weight,
                           at::IntArrayRef table_shape) {
  TORCH_CHECK_VALUE(num_embeddings >= 0 && embedding_dim >= 0, kernels::message_prefix(),
                    "num_embeddings and embedding_dim must be >= 0, got num_embeddings=",
                    num_embeddings, ", embedding_dim=", embedding_dim);
  check_table_options(options, num_embeddings);
  TORCH_CHECK_VALUE(!weight.defined() || weight.sizes() == table_shape, kernels::message_prefix(),
                    "_weight of shape ", weight.defined() ? weight.sizes() : at::IntArrayRef{},
                    " does not match the table's shape ", table_shape);
}

void check_pretrained(const at::Tensor& table, const char* name) {
  TORCH_CHECK_TYPE(table.defined(), kernels::message_prefix(), name, " is an undefined tensor");
  TORCH_CHECK_VALUE(table.dim() == 2, kernels::message_prefix(), name,
                    " must be 2-D (num_embeddings, embedding_dim), got shape ", table.sym_sizes());
}

int64_t check_module_options(torch::nn::EmbeddingOptions& options,
                             const GradScaleOptions& grad_scale, at::IntArrayRef table_shape) {
  const CallOptions call = call_options(options, grad_scale);
  check_module_settings(options.num_embeddings(), options.embedding_dim(), call, options._weight(),
                        table_shape);
  const int64_t padding = padding_row_or_none(call.padding_idx, options.num_embeddings());
  if (padding >= 0) options.padding_idx(padding);
  return padding;
}

void init_table(const at::Tensor& weight, int64_t padding_row) {
  torch::NoGradGuard no_grad;
  torch::nn::init::normal_(weight, /*mean=*/0.0, /*std=*/1.0);
  if (padding_row >= 0 && padding_row < weight.size(0)) weight[padding_row].fill_(0);
}

at::Tensor register_table(torch::nn::Module& module, const at::Tensor& current,
                          torch::nn::EmbeddingOptions& options, int64_t rows, int64_t padding_row) {
  const bool requires_grad = !current.defined() || current.requires_grad();
  if (options._weight().defined()) {
    if (current.defined()) options._weight(options._weight().detach().clone());
    return module.register_parameter("weight", options._weight(), requires_grad);
  }
  at::Tensor weight = module.register_parameter(
      "weight", torch::empty({rows, options.embedding_dim()}), requires_grad);
  init_table(weight, padding_row);
  return weight;
}

}  // namespace unit_scaling::detail
