// The call shapes of functional::embedding that users write must compile and pick the intended
// overload: this file failing to compile is the test failing.
#include <unit_scaling/functional.h>

#include "test_support.h"

namespace F = unit_scaling::functional;

namespace {

at::Tensor table() { return torch::arange(12, torch::kFloat).view({4, 3}); }

TEST(Overloads, EveryCommonCallShapeCompilesAndMeansWhatItSays) {
  const auto input = torch::tensor({0, 1, 3});
  const auto expected = table().index_select(0, input);
  EXPECT_TRUE(F::embedding(input, table()).equal(expected));
  EXPECT_TRUE(F::embedding(input, table(), {}).equal(expected));  // the options overload
  EXPECT_TRUE(F::embedding(input, table(), F::EmbeddingFuncOptions()).equal(expected));
  EXPECT_TRUE(
      F::embedding(input, table(), F::EmbeddingFuncOptions().padding_idx(1)).equal(expected));
  EXPECT_TRUE(F::embedding(input, table(), 1).equal(expected));  // positional padding_idx
  EXPECT_TRUE(F::embedding(input, table(), int64_t{-1}).equal(expected));
  EXPECT_TRUE(F::embedding(input, table(), std::nullopt).equal(expected));
  EXPECT_TRUE(F::embedding(input, table(), std::optional<int64_t>(2)).equal(expected));
  EXPECT_TRUE(F::embedding(input, table(), {}, 1e9).equal(expected));  // no padding, max_norm
  EXPECT_TRUE(F::embedding(input, table(), 0, 1e9, 2.0, false, false).equal(expected));
}

TEST(Overloads, PositionalArgumentsReachTheOperator) {
  auto weight = table();
  F::embedding(torch::tensor({3}), weight, {}, 1.0);  // max_norm = 1 renorms row 3 in place
  EXPECT_NEAR(weight[3].norm().item<double>(), 1.0, 1e-5);
  EXPECT_THROW(F::embedding(torch::tensor({0}), table(), 7), c10::ValueError);  // padding 7 >= V
  EXPECT_THROW(F::embedding(torch::tensor({0}), table(), {}, {}, 2.0, true), c10::ValueError);
  // The padding row gets no gradient through the positional form.
  auto tracked = table().requires_grad_();
  F::embedding(torch::tensor({0, 1}), tracked, 1).sum().backward();
  EXPECT_EQ(tracked.grad()[1].abs().sum().item<float>(), 0.0f);
  EXPECT_GT(tracked.grad()[0].abs().sum().item<float>(), 0.0f);
}

}  // namespace
