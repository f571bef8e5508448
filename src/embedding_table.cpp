#include "embedding_table.h"

#include <c10/util/Exception.h>
#include <torch/nn/init.h>

#include "embedding_checks.h"

namespace unit_scaling::detail {

int64_t check_module_options(const char* module, torch::nn::EmbeddingOptions& options,
                             const GradScaleOptions& grad_scale, at::IntArrayRef table_shape) {
  const int64_t num_rows = options.num_embeddings();
  TORCH_CHECK_VALUE(num_rows >= 0 && options.embedding_dim() >= 0, "unit_scaling ", module,
                    ": num_embeddings and embedding_dim must be >= 0, got num_embeddings=",
                    num_rows, ", embedding_dim=", options.embedding_dim());
  const int64_t padding = check_settings(func_options_of(options), num_rows);
  check_token_count(grad_scale.token_multiplier(), grad_scale.num_tokens());
  if (padding >= 0) options.padding_idx(padding);
  TORCH_CHECK_VALUE(!options._weight().defined() || options._weight().sizes() == table_shape,
                    "unit_scaling ", module, ": _weight of shape ",
                    options._weight().defined() ? options._weight().sizes() : at::IntArrayRef{},
                    " does not match the table's shape ", table_shape);
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
