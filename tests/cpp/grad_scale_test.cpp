// The token count of the unit scale (GradScaleOptions, docs/SCALING.md): s = sqrt(V / N_eff), on
// every backend (backends.h).
#include <unit_scaling/unit_scaling.h>

#include "backends.h"
#include "test_support.h"

namespace F = unit_scaling::functional;
using unit_scaling::GradScaleOptions;
using unit_scaling::testing::BackendTest;
using unit_scaling::testing::bitwise_equal;
using unit_scaling::testing::expect_error;
using unit_scaling::testing::reference_weight_grad;

namespace {

// weight.grad, brought back to the CPU, of a forward + backward on `device`.
at::Tensor grad_with(c10::Device device, const at::Tensor& input, const at::Tensor& table,
                     const at::Tensor& grad_out, const GradScaleOptions& grad_scale,
                     std::optional<int64_t> padding = {}) {
  auto weight = table.to(device).clone().requires_grad_();
  F::embedding(input.to(device), weight, F::EmbeddingFuncOptions().padding_idx(padding), grad_scale)
      .backward(grad_out.to(device));
  return weight.grad().cpu();
}

class GradScale : public BackendTest {};

TEST_P(GradScale, MultiplierAndExplicitCountSetTheScale) {
  const int64_t rows = 11, dim = 5;
  const auto table = torch::randn({rows, dim}, torch::kDouble);
  const auto input = torch::randint(0, rows, {3, 4});
  const auto grad_out = torch::randn({3, 4, dim}, torch::kDouble);
  // reference_weight_grad applies sqrt(V / N) with N = 12; N_eff rescales by sqrt(N / N_eff).
  const auto plain = reference_weight_grad(input, grad_out, rows, 2);
  EXPECT_TRUE(torch::allclose(grad_with(device(), input, table, grad_out, {}, 2), plain));
  for (double m : {0.125, 0.5, 4.0, 96.0}) {
    EXPECT_TRUE(torch::allclose(
        grad_with(device(), input, table, grad_out, GradScaleOptions().token_multiplier(m), 2),
        plain / std::sqrt(m)))
        << "multiplier " << m;
  }
  for (int64_t n : {1, 12, 1000}) {
    EXPECT_TRUE(torch::allclose(
        grad_with(device(), input, table, grad_out, GradScaleOptions().num_tokens(n), 2),
        plain * std::sqrt(12.0 / static_cast<double>(n))))
        << "num_tokens " << n;
  }
  // An empty input still has no gradient.
  const auto empty = torch::empty({0}, torch::kLong);
  EXPECT_TRUE(grad_with(device(), empty, table, torch::empty({0, dim}, torch::kDouble),
                        GradScaleOptions().num_tokens(7))
                  .eq(0)
                  .all()
                  .item<bool>());
}

// A finite, positive token count whose scale sqrt(V / N_eff) the accumulation type cannot hold
// (inf, or a flush to zero) is refused before anything is written, on the forward as on the
// backward: the gradient would otherwise be NaN (0 * inf) or silently zero.
TEST_P(GradScale, UnrepresentableScaleIsAValueErrorAndChangesNothing) {
  const auto input = on_device(torch::tensor({0, 0}));
  for (const auto& [dtype, m] :
       std::vector<std::pair<at::ScalarType, double>>{{at::kFloat, 1e-300},
                                                      {at::kBFloat16, 1e-300},
                                                      {at::kFloat, 1e300},
                                                      {at::kDouble, 5e-324}}) {
    const double multiplier = m;  // a lambda may not capture a structured binding before C++20
    SCOPED_TRACE(std::string(c10::toString(dtype)) + " " + std::to_string(multiplier));
    auto weight = on_device((torch::randn({7, 3}) * 3).to(dtype));
    const auto before = weight.clone();
    expect_error<c10::ValueError>(
        [&] {
          F::embedding(input, weight, F::EmbeddingFuncOptions().max_norm(0.5),
                       GradScaleOptions().token_multiplier(multiplier));
        },
        {"unit scale sqrt(V / N_eff)", "outside the normal range"});
    EXPECT_TRUE(bitwise_equal(weight, before));
  }
  // 1e-70 keeps the float32 scale finite (~1.9e35): accepted.
  auto weight = on_device(torch::randn({7, 3})).requires_grad_();
  F::embedding(input, weight, {}, GradScaleOptions().token_multiplier(1e-70))
      .backward(on_device(torch::ones({2, 3})));
  EXPECT_TRUE(torch::isfinite(weight.grad()).all().item<bool>());
}

TEST_P(GradScale, BadValuesAreValueErrorsAndChangeNothing) {
  auto weight = on_device(torch::randn({6, 3}) * 10);
  const auto input = on_device(torch::tensor({1, 2}));
  const auto before = weight.clone();
  const auto options = F::EmbeddingFuncOptions().max_norm(0.5);
  for (double m : {0.0, -1.0, std::nan(""), HUGE_VAL}) {
    expect_error<c10::ValueError>(
        [&] { F::embedding(input, weight, options, GradScaleOptions().token_multiplier(m)); },
        {"token_multiplier must be finite and > 0"});
  }
  for (int64_t n : {0, -3}) {
    expect_error<c10::ValueError>(
        [&] { F::embedding(input, weight, options, GradScaleOptions().num_tokens(n)); },
        {"num_tokens must be > 0"});
  }
  expect_error<c10::ValueError>(
      [&] {
        F::embedding(input, weight, options, GradScaleOptions().num_tokens(4).token_multiplier(2));
      },
      {"not both"});
  EXPECT_TRUE(bitwise_equal(weight, before));
  expect_error<c10::ValueError>(
      [&] {
        unit_scaling::nn::Embedding(unit_scaling::nn::EmbeddingOptions(4, 2),
                                    GradScaleOptions().token_multiplier(-2));
      },
      {"token_multiplier"});
}

TEST_P(GradScale, ModuleAndDoubleBackwardUseIt) {
  unit_scaling::nn::Embedding plain(unit_scaling::nn::EmbeddingOptions(9, 4));
  unit_scaling::nn::Embedding scaled(unit_scaling::nn::EmbeddingOptions(9, 4),
                                     GradScaleOptions().token_multiplier(4));
  {
    torch::NoGradGuard no_grad;
    scaled->weight.copy_(plain->weight);
  }
  plain->to(device());
  scaled->to(device());
  const auto input = torch::tensor({1, 3, 3, 8});
  const auto grad_out = torch::randn({4, 4});
  plain(on_device(input)).backward(on_device(grad_out));
  scaled(on_device(input)).backward(on_device(grad_out));
  EXPECT_EQ(scaled->weight.grad().device(), device());
  EXPECT_TRUE(torch::allclose(scaled->weight.grad().cpu(), plain->weight.grad().cpu() / 2));
  std::ostringstream printed;
  printed << *scaled;
  EXPECT_NE(printed.str().find("token_multiplier=4"), std::string::npos);

  // Double backward: d(grad_weight)/d(grad_out) carries the same scale.
  auto weight = on_device(torch::randn({9, 4})).requires_grad_();
  auto go = on_device(torch::randn({4, 4})).requires_grad_();
  const auto out = F::embedding(on_device(input), weight, {}, GradScaleOptions().num_tokens(36));
  const auto gw = torch::autograd::grad({out}, {weight}, {go}, true, true)[0];
  const auto ggw = torch::randn({9, 4});
  const auto result = torch::autograd::grad({gw}, {go}, {on_device(ggw)})[0];
  EXPECT_TRUE(torch::allclose(result.cpu(), ggw.index_select(0, input) * std::sqrt(9.0 / 36.0)));
}

INSTANTIATE_BACKEND_SUITE(GradScale);

}  // namespace
