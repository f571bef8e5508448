// Uses the installed library: one unit-scaled lookup and its gradient, and (with the package's
// UnitScaling::gloo_headers) a one-rank Gloo group driving VocabParallelEmbedding. Exit status 0
// on success.
#include <ATen/ATen.h>
#include <unit_scaling/unit_scaling.h>

#include <cmath>
#include <iostream>

#ifdef DOWNSTREAM_WITH_GLOO
#include <unit_scaling/distributed/gloo_group.h>
#include <unit_scaling/distributed/vocab_parallel_embedding.h>

#include <torch/csrc/distributed/c10d/HashStore.hpp>
#endif

int main() {
  const at::Tensor weight = at::arange(12, at::kFloat).view({4, 3}).requires_grad_();
  const at::Tensor input = at::tensor({3, 1, 3}, at::kLong);
  const at::Tensor out = unit_scaling::functional::embedding(input, weight);
  out.sum().backward();
  const double s = std::sqrt(4.0 / 3.0);
  bool ok = out[0].equal(weight[3].detach()) &&
            std::abs(weight.grad()[3][0].item<double>() - 2 * s) < 1e-6 &&
            weight.grad()[0].eq(0).all().item<bool>();
#ifdef DOWNSTREAM_WITH_GLOO
  // One rank owns every row: the output and the gradient are the single-device ones.
  auto group = unit_scaling::distributed::make_gloo_group(c10::make_intrusive<c10d::HashStore>(),
                                                          /*rank=*/0, /*world_size=*/1);
  auto table = weight.detach().clone();
  auto embed = unit_scaling::distributed::VocabParallelEmbedding::from_full(
      table, group, torch::nn::EmbeddingOptions(4, 3));
  const at::Tensor parallel_out = embed(input);
  parallel_out.sum().backward();
  ok = ok && parallel_out.equal(out.detach()) && embed->weight.grad().allclose(weight.grad());
  std::cout << "downstream: Gloo group of " << group->getSize() << " built from the package\n";
#endif
  std::cout << (ok ? "downstream: ok" : "downstream: WRONG RESULT") << std::endl;
  return ok ? 0 : 1;
}
