// The CPU kernels under stress: skewed and degenerate index streams, row widths that exercise
// vector tails, bitwise determinism across thread counts, and bf16/fp16 gradient precision.
#include <unit_scaling/functional.h>

#include "test_support.h"

namespace F = unit_scaling::functional;
using namespace unit_scaling::testing;

namespace {

// Restores the intra-op thread count when a test ends.
class ThreadCountGuard {
 public:
  ThreadCountGuard() : saved_(torch::get_num_threads()) {}
  ~ThreadCountGuard() { torch::set_num_threads(saved_); }

 private:
  int saved_;
};

at::Tensor gradient(const at::Tensor& input, const at::Tensor& weight, const at::Tensor& grad_out,
                    std::optional<int64_t> padding_idx = {}) {
  auto w = weight.detach().clone().requires_grad_();
  F::embedding(input, w, padding_idx).backward(grad_out);
  return w.grad();
}

enum class Stream { kUniform, kZipf, kAllSame };

at::Tensor make_indices(Stream stream, int64_t num_rows, int64_t n) {
  switch (stream) {
    case Stream::kUniform:
      return torch::randint(0, num_rows, {n});
    case Stream::kZipf:
      return zipf_indices(num_rows, n, 1.1);
    case Stream::kAllSame:
      break;
  }
  return torch::full({n}, num_rows / 2, torch::kLong);
}

class WidthsAndStreams
    : public ::testing::TestWithParam<std::tuple<int64_t, Stream, at::ScalarType>> {};

TEST_P(WidthsAndStreams, CorrectAndBitwiseIdenticalFor1To4Threads) {
  const auto [dim, stream, type] = GetParam();
  ThreadCountGuard guard;
  torch::manual_seed(30 + dim);
  const int64_t rows = dim >= 1024 ? 64 : 700;
  const int64_t n = dim >= 1024 ? 600 : 20000;
  const auto input = make_indices(stream, rows, n);
  const auto weight = torch::randn({rows, dim}).to(type);
  const auto grad_out = torch::randn({n, dim}).to(type);
  const std::optional<int64_t> padding =
      stream == Stream::kAllSame ? std::nullopt : std::optional<int64_t>{1};

  torch::set_num_threads(1);
  const auto out = F::embedding(input, weight);
  EXPECT_TRUE(out.to(at::kDouble).equal(reference_lookup(input, weight)));
  const auto reference = gradient(input, weight, grad_out, padding);
  expect_gradient_matches(reference, input, grad_out, rows, padding);
  for (int threads : {2, 4}) {
    torch::set_num_threads(threads);
    EXPECT_TRUE(bitwise_equal(F::embedding(input, weight), out)) << threads << " threads";
    EXPECT_TRUE(bitwise_equal(gradient(input, weight, grad_out, padding), reference))
        << threads << " threads";
  }
}

INSTANTIATE_TEST_SUITE_P(
    Kernels, WidthsAndStreams,
    ::testing::Combine(::testing::Values(1, 3, 7, 8, 9, 4096),
                       ::testing::Values(Stream::kUniform, Stream::kZipf, Stream::kAllSame),
                       ::testing::Values(at::kFloat, at::kBFloat16, at::kHalf)));

// Relative error ||x - ref|| / ||ref|| in float64.
double relative_error(const at::Tensor& x, const at::Tensor& reference) {
  return (x.to(at::kDouble) - reference).norm().item<double>() / reference.norm().item<double>();
}

// Contract rule 8 (docs/CONTRACT.md): on Zipf(1.1) tokens (V=1000, D=64, N=65536) a 16-bit gradient
// is within 1.5x of the error of the correctly rounded float64 result.
TEST(Precision, SixteenBitGradientsAreNearlyCorrectlyRounded) {
  torch::manual_seed(31);
  const int64_t rows = 1000, dim = 64, n = 65536;
  const auto input = zipf_indices(rows, n, 1.1);
  for (auto type : {at::kBFloat16, at::kHalf}) {
    SCOPED_TRACE(c10::toString(type));
    const auto grad_out = torch::randn({n, dim}).to(type);
    const auto reference = reference_weight_grad(input, grad_out, rows, std::nullopt);
    const double rounded_error = relative_error(reference.to(type), reference);
    const double our_error =
        relative_error(gradient(input, torch::zeros({rows, dim}, type), grad_out), reference);
    EXPECT_LE(our_error, 1.5 * rounded_error)
        << "ours " << our_error << ", rounded " << rounded_error;
  }
}

TEST(Precision, StridedWeightAndPaddingWithManyThreads) {
  ThreadCountGuard guard;
  torch::set_num_threads(3);
  torch::manual_seed(32);
  const auto weight = torch::randn({40, 300}).t();  // (300, 40), column stride 300
  const auto input = zipf_indices(300, 5000, 1.1).view({50, 100});
  const auto grad_out = torch::randn({50, 100, 40});
  EXPECT_TRUE(F::embedding(input, weight).to(at::kDouble).equal(reference_lookup(input, weight)));
  expect_gradient_matches(gradient(input, weight, grad_out, 0), input, grad_out, 300, 0);
}

}  // namespace
