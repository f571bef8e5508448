// NaN and inf in weight or grad_out propagate like ATen's path: no crash, no silent zeroing, on
// every backend (backends.h).
#include <unit_scaling/functional.h>

#include <limits>

#include "backends.h"
#include "test_support.h"

namespace F = unit_scaling::functional;
using namespace unit_scaling::testing;

namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();
const double kInf = std::numeric_limits<double>::infinity();

class NonFinite : public BackendTest {};

TEST_P(NonFinite, WeightValuesAreCopiedAsIs) {
  for (auto type : weight_dtypes()) {
    auto weight = torch::randn({6, 3}).to(type);
    weight[2][1] = kNaN;
    weight[4][0] = kInf;
    weight[4][2] = -kInf;
    const auto input = torch::tensor({2, 4, 1});
    EXPECT_TRUE(bitwise_equal(F::embedding(on_device(input), on_device(weight)),
                              torch::embedding(weight, input)))
        << type;
  }
}

TEST_P(NonFinite, GradientNaNAndInfPropagateToTheirRowsOnly) {
  for (auto type : weight_dtypes()) {
    auto weight = on_device(torch::randn({6, 3}).to(type)).requires_grad_();
    const auto input = torch::tensor({2, 4, 1, 2});
    auto grad = torch::randn({4, 3}).to(type);
    grad[0][1] = kNaN;  // row 2, column 1
    grad[1][0] = kInf;  // row 4, column 0
    F::embedding(on_device(input), weight).backward(on_device(grad));
    const auto aten = torch::embedding_dense_backward(grad.to(at::kDouble), input, 6, -1, false);
    const auto ours = weight.grad().cpu().to(at::kDouble);
    EXPECT_TRUE(ours.isnan().equal(aten.isnan())) << type;
    EXPECT_TRUE(ours.isinf().equal(aten.isinf())) << type;
    EXPECT_TRUE(ours.isfinite().sum().item<int64_t>() == 16) << type;  // 18 - the two non-finite
  }
}

TEST_P(NonFinite, MaxNormOnNaNAndInfRowsMatchesEmbeddingRenorm) {
  for (double p : {2.0, 1.0, kInf})
    for (auto type : weight_dtypes()) {
      SCOPED_TRACE(p);
      auto original = (torch::randn({5, 4}) * 3).to(type);
      original[1][2] = kNaN;
      original[3][0] = kInf;
      auto expected = original.clone();
      const auto input = torch::tensor({1, 3, 0});
      torch::embedding_renorm_(expected, input, 1.0, p);
      auto weight_on_device = on_device(original).clone();
      F::embedding(on_device(input), weight_on_device,
                   F::EmbeddingFuncOptions().max_norm(1.0).norm_type(p));
      const auto weight = weight_on_device.cpu();
      // NaN norm: the row is left alone; inf norm: the factor is 0, inf * 0 = NaN, as in ATen.
      EXPECT_TRUE(weight.isnan().equal(expected.isnan())) << type;
      const double tolerance = 4 * unit_roundoff(type);  // one rounding apart at most
      EXPECT_TRUE(torch::allclose(weight.nan_to_num(0).to(at::kDouble),
                                  expected.nan_to_num(0).to(at::kDouble), tolerance, tolerance))
          << type;
    }
}

INSTANTIATE_BACKEND_SUITE(NonFinite);

}  // namespace
