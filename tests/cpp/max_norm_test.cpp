// Contract rule 5 (docs/CONTRACT.md): max_norm renormalises the referenced rows of the caller's
// weight in place, on every backend (backends.h).
#include <unit_scaling/functional.h>

#include <limits>

#include "backends.h"
#include "test_support.h"

namespace F = unit_scaling::functional;
using namespace unit_scaling::testing;

namespace {

// Float64 reference of embedding_renorm_: each distinct referenced row with p-norm > max_norm
// is multiplied by max_norm / (norm + 1e-7).
at::Tensor reference_renorm(const at::Tensor& weight, const at::Tensor& input, double max_norm,
                            double p) {
  at::Tensor result = weight.to(at::kDouble).clone();
  const auto rows = std::get<0>(at::_unique(input.reshape({-1}).to(at::kLong)));
  for (int64_t i = 0; i < rows.numel(); ++i) {
    const int64_t r = rows[i].item<int64_t>();
    const auto row = result[r];
    const double norm = std::isinf(p) ? row.abs().max().item<double>()
                                      : row.abs().pow(p).sum().pow(1.0 / p).item<double>();
    if (norm > max_norm) row.mul_(max_norm / (norm + 1e-7));
  }
  return result;
}

class MaxNorm : public BackendTestWith<double> {};

TEST_P(MaxNorm, RenormsReferencedRowsInPlaceLikeEmbeddingRenorm) {
  const double p = std::get<1>(GetParam());
  torch::manual_seed(8);
  for (auto type : weight_dtypes()) {
    const auto original = (torch::randn({20, 6}) * 2).to(type);
    auto weight_on_device = on_device(original).clone();
    const auto input = torch::tensor({{3, 7, 3}, {19, 0, 7}});  // repeated indices
    const double max_norm = 1.5;
    const int64_t version = weight_on_device._version();
    const auto out = F::embedding(on_device(input), weight_on_device,
                                  F::EmbeddingFuncOptions().max_norm(max_norm).norm_type(p));
    EXPECT_GT(weight_on_device._version(), version)
        << "in-place change must bump the version counter";
    const auto weight = weight_on_device.cpu();

    const auto expected = reference_renorm(original, input, max_norm, p);
    const double tolerance =
        type == at::kFloat || type == at::kDouble ? 1e-6 : 4 * unit_roundoff(type);
    EXPECT_TRUE(torch::allclose(weight.to(at::kDouble), expected, tolerance, 1e-6)) << type;
    // Same as PyTorch's own operator on a copy.
    auto aten_weight = original.clone();
    torch::embedding_renorm_(aten_weight, input.reshape({-1}), max_norm, p);
    EXPECT_TRUE(
        torch::allclose(weight.to(at::kDouble), aten_weight.to(at::kDouble), tolerance, 1e-6));
    // Unreferenced rows are bit-for-bit untouched; the output is the renormed rows.
    for (int64_t r : {1, 2, 4, 5, 18}) EXPECT_TRUE(bitwise_equal(weight[r], original[r]));
    EXPECT_TRUE(bitwise_equal(out, F::embedding(on_device(input), weight_on_device)));
    // Every referenced row now has norm <= max_norm (up to rounding).
    for (int64_t r : {0, 3, 7, 19}) {
      const auto row = weight[r].to(at::kDouble);
      const double norm = std::isinf(p) ? row.abs().max().item<double>()
                                        : row.abs().pow(p).sum().pow(1.0 / p).item<double>();
      EXPECT_LE(norm, max_norm * (1 + 8 * unit_roundoff(type))) << r;
    }
  }
}

INSTANTIATE_BACKEND_SUITE_WITH(MaxNorm, ::testing::Values(1.0, 2.0, 3.0,
                                                          std::numeric_limits<double>::infinity()));

class MaxNormRule : public BackendTest {};

TEST_P(MaxNormRule, RowsWithinTheLimitAreUntouched) {
  auto weight = on_device(torch::full({4, 3}, 0.1));
  const auto before = weight.clone();
  F::embedding(on_device(torch::tensor({0, 1, 2, 3})), weight,
               F::EmbeddingFuncOptions().max_norm(1.0));
  EXPECT_TRUE(bitwise_equal(weight, before));
}

TEST_P(MaxNormRule, InfiniteMaxNormChangesNothing) {
  auto weight = on_device(torch::randn({5, 4}) * 1e30);
  const auto before = weight.clone();
  F::embedding(on_device(torch::tensor({0, 1, 4})), weight,
               F::EmbeddingFuncOptions().max_norm(std::numeric_limits<double>::infinity()));
  EXPECT_TRUE(bitwise_equal(weight, before));
}

TEST_P(MaxNormRule, WorksOnNonContiguousWeightAndLeafParameters) {
  auto storage = on_device(torch::randn({4, 10}) * 3);
  auto weight = storage.t();  // (10, 4) view with strides (1, 10), made on the device
  ASSERT_FALSE(weight.is_contiguous());
  const auto expected = reference_renorm(weight.cpu(), torch::tensor({9, 2}), 1.0, 2.0);
  F::embedding(on_device(torch::tensor({9, 2})), weight, F::EmbeddingFuncOptions().max_norm(1.0));
  EXPECT_TRUE(torch::allclose(weight.cpu().to(at::kDouble), expected, 1e-6, 1e-6));

  // A leaf that requires grad is renormed (under no-grad) and still gets its gradient.
  auto parameter = on_device(torch::randn({8, 3}) * 5).requires_grad_();
  const auto out = F::embedding(on_device(torch::tensor({1, 1, 6})), parameter, {}, 2.0);
  out.sum().backward();
  EXPECT_LE(parameter[1].detach().norm().item<double>(), 2.0 + 1e-5);
  EXPECT_TRUE(
      torch::allclose(parameter.grad()[1].cpu(), torch::full({3}, 2 * std::sqrt(8.0 / 3.0))));
}

TEST_P(MaxNormRule, PaddingRowIsRenormedToo) {
  // Like torch.embedding_renorm_, every referenced row counts, the padding row included.
  auto weight = on_device(torch::full({3, 2}, 10.0));
  F::embedding(on_device(torch::tensor({0, 2})), weight,
               F::EmbeddingFuncOptions().padding_idx(0).max_norm(1.0));
  EXPECT_NEAR(weight[0].norm().item<double>(), 1.0, 1e-5);
  EXPECT_EQ(weight[1][0].item<double>(), 10.0);
}

INSTANTIATE_BACKEND_SUITE(MaxNormRule);

}  // namespace
