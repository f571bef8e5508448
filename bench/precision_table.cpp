// Precision of 16-bit weight gradients on Zipf(1.1) tokens (V=1000, D=64, N=65536): relative
// error ||g - ref|| / ||ref|| against a float64 reference for the correctly rounded result, our
// unit-scaled backward, and ATen's path (embedding_dense_backward in the weight dtype, then
// mul_(sqrt(V/N))). Prints one line per dtype.
#include <torch/torch.h>
#include <unit_scaling/functional.h>

#include <cmath>
#include <cstdio>

int main() {
  torch::manual_seed(0);
  const int64_t rows = 1000, dim = 64, n = 65536;
  const double scale = std::sqrt(double(rows) / double(n));
  const auto ranks = torch::arange(1, rows + 1, torch::kDouble);
  const auto input = torch::multinomial(ranks.pow(-1.1), n, /*replacement=*/true);
  std::printf("| dtype | correctly rounded | ours | ours / rounded | ATen | ATen / rounded |\n");
  std::printf("|---|---|---|---|---|---|\n");
  for (auto type : {torch::kBFloat16, torch::kHalf}) {
    const auto grad_out = torch::randn({n, dim}).to(type);
    const auto reference = torch::zeros({rows, dim}, torch::kDouble)
                               .index_add_(0, input, grad_out.to(torch::kDouble)) *
                           scale;
    const auto error = [&](const torch::Tensor& g) {
      return ((g.to(torch::kDouble) - reference).norm() / reference.norm()).item<double>();
    };
    auto weight = torch::zeros({rows, dim}, type).requires_grad_();
    unit_scaling::functional::embedding(input, weight).backward(grad_out);
    const double rounded = error(reference.to(type));
    const double ours = error(weight.grad());
    const double aten =
        error(torch::embedding_dense_backward(grad_out, input, rows, -1, false).mul_(scale));
    std::printf("| %s | %.3g | %.3g | %.2f | %.3g | %.1f |\n", c10::toString(type), rounded, ours,
                ours / rounded, aten, aten / rounded);
  }
  return 0;
}
