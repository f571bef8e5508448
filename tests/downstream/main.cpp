// Uses the installed library: one unit-scaled lookup and its gradient. Exit status 0 on success.
#include <ATen/ATen.h>
#include <unit_scaling/unit_scaling.h>

#include <cmath>
#include <iostream>

int main() {
  const at::Tensor weight = at::arange(12, at::kFloat).view({4, 3}).requires_grad_();
  const at::Tensor input = at::tensor({3, 1, 3}, at::kLong);
  const at::Tensor out = unit_scaling::functional::embedding(input, weight);
  out.sum().backward();
  const double s = std::sqrt(4.0 / 3.0);
  const bool ok = out[0].equal(weight[3].detach()) &&
                  std::abs(weight.grad()[3][0].item<double>() - 2 * s) < 1e-6 &&
                  weight.grad()[0].eq(0).all().item<bool>();
  std::cout << (ok ? "downstream: ok" : "downstream: WRONG RESULT") << std::endl;
  return ok ? 0 : 1;
}
