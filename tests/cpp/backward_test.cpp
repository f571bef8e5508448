// Contract rules 7, 8 and 9: the unit-scaled weight gradient, its precision and determinism,
// and double backward, on every backend (backends.h).
#include <unit_scaling/functional.h>

#include "backends.h"
#include "test_support.h"

namespace F = unit_scaling::functional;
using namespace unit_scaling::testing;

namespace {

// Runs forward + backward on `device` with the given output gradient and returns weight.grad
// (on the device).
at::Tensor weight_grad(c10::Device device, const at::Tensor& input, const at::Tensor& weight_values,
                       const at::Tensor& grad_out, std::optional<int64_t> padding_idx = {}) {
  auto weight = weight_values.detach().to(device).clone().requires_grad_();
  const auto out = F::embedding(input.to(device), weight, padding_idx);
  out.backward(grad_out.to(device));
  return weight.grad();
}

class BackwardDtypes : public BackendTestWith<at::ScalarType, at::ScalarType> {
 protected:
  at::ScalarType weight_type() const { return std::get<1>(GetParam()); }
  at::ScalarType index_type() const { return std::get<2>(GetParam()); }
};

TEST_P(BackwardDtypes, IsScaledScatterSumRoundedOnce) {
  torch::manual_seed(3);
  const int64_t rows = 50;
  const auto weight = torch::randn({rows, 16}).to(weight_type());
  const auto input = torch::randint(0, rows, {12, 9}, torch::TensorOptions().dtype(index_type()));
  const auto grad_out = torch::randn({12, 9, 16}).to(weight_type());
  for (std::optional<int64_t> padding :
       {std::optional<int64_t>{}, std::optional<int64_t>{7}, std::optional<int64_t>{-3}}) {
    const auto grad = weight_grad(device(), input, weight, grad_out, padding);
    EXPECT_EQ(grad.device(), device());
    EXPECT_EQ(grad.scalar_type(), weight_type());
    expect_gradient_matches(grad, input, grad_out, rows, padding);
  }
}

// A skewed batch (a few rows take most of the 5120 lookups), padding row 0.
TEST_P(BackwardDtypes, SkewedBatchForwardAndBackwardMatchTheFloat64Reference) {
  torch::manual_seed(20);
  const auto cpu_weight = torch::randn({300, 24}).to(weight_type());
  const auto cpu_input = (torch::rand({64, 80}).pow(3) * 300).to(index_type());
  const auto cpu_grad = torch::randn({64, 80, 24}).to(weight_type());
  auto weight = on_device(cpu_weight).clone().requires_grad_();
  const auto out = F::embedding(on_device(cpu_input), weight, /*padding_idx=*/0);
  EXPECT_EQ(out.device(), device());
  EXPECT_TRUE(out.cpu().to(at::kDouble).equal(reference_lookup(cpu_input, cpu_weight)));
  out.backward(on_device(cpu_grad));
  expect_gradient_matches(weight.grad(), cpu_input, cpu_grad, 300, 0);
}

INSTANTIATE_BACKEND_SUITE_WITH(BackwardDtypes, ::testing::ValuesIn(weight_dtypes()),
                               ::testing::ValuesIn(index_dtypes()));

class Backward : public BackendTest {};

TEST_P(Backward, EqualsAtenDenseBackwardTimesScale) {
  torch::manual_seed(4);
  const auto weight = torch::randn({30, 8}, torch::kDouble);
  const auto input = torch::randint(0, 30, {40});
  const auto grad_out = torch::randn({40, 8}, torch::kDouble);
  const auto aten = torch::embedding_dense_backward(grad_out, input, 30, /*padding_idx=*/4,
                                                    /*scale_grad_by_freq=*/false) *
                    std::sqrt(30.0 / 40.0);
  EXPECT_TRUE(
      torch::allclose(weight_grad(device(), input, weight, grad_out, 4).cpu(), aten, 1e-14, 1e-14));
}

TEST_P(Backward, PaddingRowGetsNoGradientAndOthersUnaffected) {
  const auto weight = torch::randn({10, 3});
  const auto input = torch::tensor({{0, 2, 0, 5}});
  const auto grad = weight_grad(device(), input, weight, torch::ones({1, 4, 3}), 0).cpu();
  const double s = std::sqrt(10.0 / 4.0);  // N counts padding positions too
  EXPECT_TRUE(grad[0].eq(0).all().item<bool>());
  EXPECT_TRUE(torch::allclose(grad[2], torch::full({3}, s)));
  EXPECT_TRUE(torch::allclose(grad[5], torch::full({3}, s)));
  EXPECT_EQ(grad.ne(0).sum().item<int64_t>(), 6);
}

TEST_P(Backward, EmptyInputGivesZeroGradient) {
  for (auto type : weight_dtypes()) {
    const auto grad = weight_grad(device(), torch::empty({0, 4}, torch::kLong),
                                  torch::randn({7, 5}).to(type), torch::empty({0, 4, 5}).to(type));
    ASSERT_TRUE(grad.defined());
    EXPECT_EQ(grad.device(), device());
    EXPECT_TRUE(grad.eq(0).all().item<bool>());
    EXPECT_FALSE(grad.isnan().any().item<bool>());
  }
}

TEST_P(Backward, NoGradientForInputAndNoneWithoutRequiresGrad) {
  const auto weight = on_device(torch::randn({4, 2}));
  const auto out = F::embedding(on_device(torch::tensor({1, 2})), weight);
  EXPECT_FALSE(out.requires_grad());
  auto tracked = weight.clone().requires_grad_();
  const auto out2 = F::embedding(on_device(torch::tensor({1, 2})), tracked);
  ASSERT_TRUE(out2.requires_grad());
  // The graph has exactly one input edge: the weight.
  int edges = 0;
  for (const auto& edge : out2.grad_fn()->next_edges()) edges += edge.is_valid();
  EXPECT_EQ(edges, 1);
}

// Contract rule 8 (docs/CONTRACT.md): sums accumulate in float32, so many small bf16
// contributions are not lost.
TEST_P(Backward, Bfloat16AccumulatesInFloat32) {
  // 4096 lookups of row 0, each with gradient 1: a bf16 running sum stalls at 256.
  const auto input = torch::zeros({4096}, torch::kLong);
  const auto grad_out = torch::ones({4096, 2}, torch::kBFloat16);
  const auto grad =
      weight_grad(device(), input, torch::zeros({16, 2}, torch::kBFloat16), grad_out).cpu();
  EXPECT_EQ(grad[0][0].item<float>(), 4096.0f * std::sqrt(16.0f / 4096.0f));  // = 256, exact
  const auto aten_bf16 =
      torch::embedding_dense_backward(grad_out, input, 16, -1, false).to(torch::kFloat);
  EXPECT_NE(aten_bf16[0][0].item<float>(), 4096.0f);  // what bf16 accumulation would give
}

TEST_P(Backward, DeterministicAcrossThreadCounts) {
  torch::manual_seed(5);
  const auto weight = torch::randn({300, 33});
  // Zipf-like skew: a few rows get most of the lookups.
  const auto input = (torch::rand({5000}).pow(4) * 300).to(torch::kLong);
  const auto grad_out = torch::randn({5000, 33});
  const int saved = torch::get_num_threads();
  torch::set_num_threads(1);
  const auto reference = weight_grad(device(), input, weight, grad_out);
  for (int threads : {2, 4}) {
    torch::set_num_threads(threads);
    EXPECT_TRUE(bitwise_equal(weight_grad(device(), input, weight, grad_out), reference))
        << threads;
  }
  torch::set_num_threads(saved);
}

// Run to run: the same call gives the same bits (a device's atomics must not reorder the sums).
TEST_P(Backward, IsBitwiseRepeatable) {
  torch::manual_seed(21);
  const auto input = on_device((torch::rand({20000}).pow(4) * 1000).to(torch::kLong));
  const auto grad = on_device(torch::randn({20000, 64}));
  std::vector<at::Tensor> results;
  for (int run = 0; run < 3; ++run) {
    auto weight = torch::zeros({1000, 64}, options(at::kFloat)).requires_grad_();
    F::embedding(input, weight).backward(grad);
    results.push_back(weight.grad().cpu());
  }
  EXPECT_TRUE(bitwise_equal(results[0], results[1]));
  EXPECT_TRUE(bitwise_equal(results[0], results[2]));
}

INSTANTIATE_BACKEND_SUITE(Backward);

class UnitScale : public BackendTest {};

// The point of the op: unit-scale gradients whatever N/V, where plain ATen gives sqrt(N/V).
TEST_P(UnitScale, OutputAndWeightGradientHaveUnitStd) {
  torch::manual_seed(6);
  const int64_t rows = 4096;
  const auto weight = on_device(torch::randn({rows, 64})).requires_grad_();
  const auto input = torch::randint(0, rows, {16, 32});
  const auto out = F::embedding(on_device(input), weight);
  const auto grad_out = torch::randn({16, 32, 64});
  out.backward(on_device(grad_out));
  EXPECT_NEAR(out.std().item<double>(), 1.0, 0.1);
  EXPECT_NEAR(weight.grad().std().item<double>(), 1.0, 0.1);
  const auto plain = torch::embedding_dense_backward(grad_out, input, rows, -1, false);
  const double plain_std = plain.std().item<double>();
  EXPECT_GT(std::abs(plain_std - 1.0), 0.5);
  EXPECT_NEAR(plain_std, std::sqrt(512.0 / rows), 0.05);
}

INSTANTIATE_BACKEND_SUITE(UnitScale);

class DoubleBackward : public BackendTest {};

// Contract rule 9 (docs/CONTRACT.md): with create_graph the gradient is itself differentiable
// (linear in grad_out).
TEST_P(DoubleBackward, GradientOfTheGradientIsTheScaledMaskedLookup) {
  torch::manual_seed(7);
  const int64_t rows = 12;
  auto weight = on_device(torch::randn({rows, 5}, torch::kDouble)).requires_grad_();
  const auto input = torch::tensor({{3, 1, 3}, {0, 11, 1}});
  auto grad_out = on_device(torch::randn({2, 3, 5}, torch::kDouble)).requires_grad_();
  const auto out = F::embedding(on_device(input), weight, /*padding_idx=*/1);
  const auto grad_w = torch::autograd::grad({out}, {weight}, {grad_out}, /*retain_graph=*/true,
                                            /*create_graph=*/true)[0];
  ASSERT_TRUE(grad_w.requires_grad());
  const auto probe = torch::randn({rows, 5}, torch::kDouble);
  const auto gg = torch::autograd::grad({(grad_w * on_device(probe)).sum()}, {grad_out})[0];
  // d/d(grad_out[p]) <probe, grad_w> = s * probe[input[p]], zero at padding positions.
  const double s = std::sqrt(12.0 / 6.0);
  auto expected = reference_lookup(input, probe) * s;
  expected.masked_fill_(input.eq(1).unsqueeze(-1), 0.0);
  EXPECT_TRUE(torch::allclose(gg.cpu(), expected, 1e-14, 1e-14));
  // Linearity: the gradient for 2 * grad_out is twice the gradient.
  const auto out2 = F::embedding(on_device(input), weight, 1);
  const auto grad_w2 = torch::autograd::grad({out2}, {weight}, {2 * grad_out.detach()})[0];
  EXPECT_TRUE(torch::allclose(grad_w2.cpu(), 2 * grad_w.detach().cpu(), 1e-14, 1e-14));
}

TEST_P(DoubleBackward, WorksForEmptyInput) {
  auto weight = on_device(torch::randn({4, 3}, torch::kDouble)).requires_grad_();
  auto grad_out = on_device(torch::randn({0, 3}, torch::kDouble)).requires_grad_();
  const auto out = F::embedding(on_device(torch::empty({0}, torch::kLong)), weight);
  const auto grad_w = torch::autograd::grad({out}, {weight}, {grad_out}, true, true)[0];
  const auto gg = torch::autograd::grad({grad_w.sum()}, {grad_out})[0];
  EXPECT_EQ(gg.sizes(), grad_out.sizes());
}

TEST_P(DoubleBackward, EmptyInputGivesZeroAndTheGradientOfTheGradientIsTheScale) {
  auto weight = on_device(torch::randn({6, 3}, torch::kDouble)).requires_grad_();
  F::embedding(on_device(torch::empty({0}, torch::kLong)), weight).sum().backward();
  EXPECT_TRUE(weight.grad().eq(0).all().item<bool>());
  const auto input = on_device(torch::tensor({4, 2, 4}));
  auto grad_out = torch::randn({3, 3}, options(at::kDouble)).requires_grad_();
  const auto grad_w =
      torch::autograd::grad({F::embedding(input, weight)}, {weight}, {grad_out}, true, true)[0];
  const auto gg = torch::autograd::grad({grad_w.sum()}, {grad_out})[0];
  EXPECT_TRUE(torch::allclose(gg.cpu(), torch::full({3, 3}, std::sqrt(6.0 / 3.0), torch::kDouble)));
}

INSTANTIATE_BACKEND_SUITE(DoubleBackward);

}  // namespace
