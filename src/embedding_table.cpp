#include "embedding_table.h"

#include <torch/nn/init.h>

namespace unit_scaling::detail {

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
