// The same contract on a CUDA device (ATen-backed path). Skipped where no GPU is visible;
// run on a GPU machine with scripts/gpu_check.sh.
#include <unit_scaling/functional.h>

#include "test_support.h"

namespace F = unit_scaling::functional;
using namespace unit_scaling::testing;

namespace {

class Cuda : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device visible";
  }
};

TEST_F(Cuda, ForwardAndBackwardMatchTheFloat64Reference) {
  torch::manual_seed(20);
  for (auto type : weight_dtypes()) {
    for (auto index_type : index_dtypes()) {
      SCOPED_TRACE(std::string(c10::toString(type)) + "/" + c10::toString(index_type));
      const auto cpu_weight = torch::randn({300, 24}).to(type);
      const auto cpu_input =
          (torch::rand({64, 80}).pow(3) * 300).to(index_type);  // skewed, N = 5120
      const auto cpu_grad = torch::randn({64, 80, 24}).to(type);
      auto weight = cpu_weight.to(torch::kCUDA).requires_grad_();
      const auto out = F::embedding(cpu_input.to(torch::kCUDA), weight, /*padding_idx=*/0);
      EXPECT_TRUE(out.is_cuda());
      EXPECT_TRUE(out.cpu().to(at::kDouble).equal(reference_lookup(cpu_input, cpu_weight)));
      out.backward(cpu_grad.to(torch::kCUDA));
      expect_gradient_matches(weight.grad().cpu(), cpu_input, cpu_grad, 300, 0);
    }
  }
}

TEST_F(Cuda, BackwardIsBitwiseRepeatable) {
  torch::manual_seed(21);
  const auto input = (torch::rand({20000}, torch::kCUDA).pow(4) * 1000).to(torch::kLong);
  const auto grad = torch::randn({20000, 64}, torch::kCUDA);
  std::vector<at::Tensor> results;
  for (int run = 0; run < 3; ++run) {
    auto weight = torch::zeros({1000, 64}, torch::kCUDA).requires_grad_();
    F::embedding(input, weight).backward(grad);
    results.push_back(weight.grad().cpu());
  }
  EXPECT_TRUE(bitwise_equal(results[0], results[1]));
  EXPECT_TRUE(bitwise_equal(results[0], results[2]));
}

TEST_F(Cuda, MaxNormAndAtomicErrors) {
  auto weight = (torch::randn({10, 4}) * 3 + 5).to(torch::kCUDA);
  const auto before = weight.clone();
  EXPECT_THROW(F::embedding(torch::tensor({1, 2, 10}).to(torch::kCUDA), weight, {}, 0.5),
               c10::IndexError);
  EXPECT_TRUE(bitwise_equal(weight.cpu(), before.cpu()));
  expect_error<c10::IndexError>(
      [&] {
        F::embedding(torch::tensor({{0, 1}, {-1, 2}}).to(torch::kCUDA), weight);
      },
      {"index -1", "input[1, 0]"});
  const int64_t version = weight._version();
  F::embedding(torch::tensor({1, 1, 2}).to(torch::kCUDA), weight, {}, 0.5);
  EXPECT_GT(weight._version(), version);
  EXPECT_NEAR(weight[1].norm().item<double>(), 0.5, 1e-5);
  EXPECT_TRUE(bitwise_equal(weight[3].cpu(), before[3].cpu()));
}

TEST_F(Cuda, EmptyInputAndDoubleBackward) {
  auto weight = torch::randn({6, 3}, torch::TensorOptions(torch::kDouble).device(torch::kCUDA))
                    .requires_grad_();
  F::embedding(torch::empty({0}, torch::TensorOptions(torch::kLong).device(torch::kCUDA)), weight)
      .sum()
      .backward();
  EXPECT_TRUE(weight.grad().eq(0).all().item<bool>());
  const auto input = torch::tensor({4, 2, 4}).to(torch::kCUDA);
  auto grad_out = torch::randn({3, 3}, weight.options()).requires_grad_();
  const auto grad_w =
      torch::autograd::grad({F::embedding(input, weight)}, {weight}, {grad_out}, true, true)[0];
  const auto gg = torch::autograd::grad({grad_w.sum()}, {grad_out})[0];
  EXPECT_TRUE(torch::allclose(gg.cpu(), torch::full({3, 3}, std::sqrt(6.0 / 3.0), torch::kDouble)));
}

}  // namespace
