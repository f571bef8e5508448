// Quick start: the two examples of unit_scaling.functional.embedding's documentation, run
// through unit_scaling::functional::embedding, with their unit-scaled gradients.
#include <torch/torch.h>
#include <unit_scaling/unit_scaling.h>

#include <cmath>
#include <iostream>

namespace F = unit_scaling::functional;

namespace {

void show_backward(const torch::Tensor& output, const torch::Tensor& weight, int64_t lookups) {
  output.backward(torch::ones_like(output));
  const double scale = std::sqrt(static_cast<double>(weight.size(0)) / lookups);
  std::cout << "applied scale sqrt(V/N) = sqrt(" << weight.size(0) << "/" << lookups
            << ") = " << scale << "\n"
            << "weight.grad (output gradient of ones: row r = scale x uses of r):\n"
            << weight.grad() << "\n\n";
}

}  // namespace

int main() {
  torch::manual_seed(0);

  std::cout << "== A batch of 2 samples of 4 indices each, into a 10 x 3 table ==\n";
  const auto input = torch::tensor({{1, 2, 4, 5}, {4, 3, 2, 9}});
  const auto embedding_matrix = torch::rand({10, 3}).requires_grad_();
  const auto output = F::embedding(input, embedding_matrix);
  std::cout << "output:\n" << output << "\n";
  show_backward(output, embedding_matrix, input.numel());

  std::cout << "== With padding_idx=0 (row 0 zeroed, no gradient at its positions) ==\n";
  auto weights = torch::rand({10, 3});
  weights[0].zero_();
  weights.requires_grad_();
  const auto padded_input = torch::tensor({{0, 2, 0, 5}});
  const auto padded_output =
      F::embedding(padded_input, weights, F::EmbeddingFuncOptions().padding_idx(0));
  std::cout << "output:\n" << padded_output << "\n";
  show_backward(padded_output, weights, padded_input.numel());
  return 0;
}
