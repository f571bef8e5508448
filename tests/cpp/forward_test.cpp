// Contract rules 1 and 2 (shapes, dtypes, strides of the lookup) and the spec's two examples, on
// every backend (backends.h).
#include <unit_scaling/functional.h>

#include "backends.h"
#include "test_support.h"

namespace F = unit_scaling::functional;
using namespace unit_scaling::testing;

namespace {

class ForwardDtypes : public BackendTestWith<at::ScalarType, at::ScalarType> {};

TEST_P(ForwardDtypes, MatchesFloat64ReferenceAndAten) {
  const auto weight_type = std::get<1>(GetParam());
  const auto index_type = std::get<2>(GetParam());
  torch::manual_seed(1);
  const auto weight = torch::randn({37, 11}).to(weight_type);
  const auto input = torch::randint(0, 37, {5, 7}, torch::TensorOptions().dtype(index_type));
  const auto out = F::embedding(on_device(input), on_device(weight));
  EXPECT_EQ(out.device(), device());
  EXPECT_EQ(out.scalar_type(), weight_type);
  EXPECT_EQ(out.sizes(), (std::vector<int64_t>{5, 7, 11}));
  EXPECT_TRUE(out.cpu().to(at::kDouble).equal(reference_lookup(input, weight)));
  EXPECT_TRUE(bitwise_equal(out, torch::embedding(on_device(weight), on_device(input))));
}

INSTANTIATE_BACKEND_SUITE_WITH(ForwardDtypes, ::testing::ValuesIn(weight_dtypes()),
                               ::testing::ValuesIn(index_dtypes()));

class Forward : public BackendTest {};

TEST_P(Forward, InputShapes) {
  const auto weight = torch::randn({9, 4});
  const std::vector<at::Tensor> inputs{
      torch::tensor(3),                       // 0-d
      torch::tensor({0, 8, 3}),               // 1-d
      torch::randint(0, 9, {2, 3, 4}),        // 3-d
      torch::empty({0}, torch::kLong),        // empty 1-d
      torch::empty({2, 0, 3}, torch::kLong),  // empty 3-d
  };
  for (const auto& input : inputs) {
    const auto out = F::embedding(on_device(input), on_device(weight));
    std::vector<int64_t> expected(input.sizes().begin(), input.sizes().end());
    expected.push_back(4);
    EXPECT_EQ(out.sizes(), expected) << input.sizes();
    EXPECT_TRUE(out.cpu().to(at::kDouble).equal(reference_lookup(input, weight))) << input.sizes();
  }
}

TEST_P(Forward, ZeroWidthAndEmptyTable) {
  const auto narrow = on_device(torch::randn({5, 0}));
  EXPECT_EQ(F::embedding(on_device(torch::tensor({1, 4})), narrow).sizes(),
            (std::vector<int64_t>{2, 0}));
  const auto empty_table = on_device(torch::randn({0, 3}));
  EXPECT_EQ(F::embedding(on_device(torch::empty({0}, torch::kLong)), empty_table).sizes(),
            (std::vector<int64_t>{0, 3}));
}

TEST_P(Forward, NonContiguousWeightAndInput) {
  torch::manual_seed(2);
  for (auto type : weight_dtypes()) {
    // The views are taken on the device, so that the op sees their strides there.
    const auto transposed = on_device(torch::randn({6, 20}).to(type)).t();  // (20, 6), (1, 20)
    ASSERT_FALSE(transposed.is_contiguous());
    const auto strided_input = on_device(torch::randint(0, 20, {8, 6})).t().slice(0, 0, 6, 2);
    ASSERT_FALSE(strided_input.is_contiguous());
    const auto out = F::embedding(strided_input, transposed);
    EXPECT_TRUE(
        out.cpu().to(at::kDouble).equal(reference_lookup(strided_input.cpu(), transposed.cpu())));
    const auto sliced = on_device(torch::randn({30, 10}).to(type)).slice(1, 2, 9, 3);  // stride 3
    ASSERT_EQ(sliced.stride(1), 3);
    const auto out2 = F::embedding(on_device(torch::tensor({29, 0, 5})), sliced);
    EXPECT_TRUE(out2.cpu()
                    .to(at::kDouble)
                    .equal(reference_lookup(torch::tensor({29, 0, 5}), sliced.cpu())));
  }
}

TEST_P(Forward, OutputOwnsItsMemory) {
  auto weight = on_device(torch::randn({4, 3}));
  const auto out = F::embedding(on_device(torch::tensor({1})), weight);
  weight.fill_(7);
  EXPECT_FALSE(out.eq(7).any().item<bool>());
}

TEST_P(Forward, OptionsAndPositionalOverloadAgree) {
  const auto weight = on_device(torch::randn({10, 3}));
  const auto input = on_device(torch::tensor({{0, 2, 0, 5}}));
  const auto a = F::embedding(input, weight, F::EmbeddingFuncOptions().padding_idx(0));
  const auto b = F::embedding(input, weight, /*padding_idx=*/0);
  EXPECT_TRUE(bitwise_equal(a, b));
}

INSTANTIATE_BACKEND_SUITE(Forward);

class SpecExamples : public BackendTest {};

// Spec example 1: the rows of the printed table give the printed output, value by value.
TEST_P(SpecExamples, BatchOfTwoSamplesOfFourIndices) {
  auto matrix = torch::zeros({10, 3});
  matrix[1] = torch::tensor({0.8490f, 0.9625f, 0.6753f});
  matrix[2] = torch::tensor({0.9666f, 0.7761f, 0.6108f});
  matrix[4] = torch::tensor({0.6246f, 0.9751f, 0.3618f});
  matrix[5] = torch::tensor({0.4161f, 0.2419f, 0.7383f});
  matrix[3] = torch::tensor({0.0237f, 0.7794f, 0.0528f});
  matrix[9] = torch::tensor({0.3385f, 0.8612f, 0.1867f});
  const auto input = torch::tensor({{1, 2, 4, 5}, {4, 3, 2, 9}});
  const auto expected = torch::tensor({{{0.8490f, 0.9625f, 0.6753f},
                                        {0.9666f, 0.7761f, 0.6108f},
                                        {0.6246f, 0.9751f, 0.3618f},
                                        {0.4161f, 0.2419f, 0.7383f}},
                                       {{0.6246f, 0.9751f, 0.3618f},
                                        {0.0237f, 0.7794f, 0.0528f},
                                        {0.9666f, 0.7761f, 0.6108f},
                                        {0.3385f, 0.8612f, 0.1867f}}});
  EXPECT_TRUE(F::embedding(on_device(input), on_device(matrix)).cpu().equal(expected));
}

// Spec example 2: padding_idx=0 with row 0 zeroed gives zero rows at the padding positions.
TEST_P(SpecExamples, PaddingIdx) {
  auto weights = torch::zeros({10, 3});
  weights[2] = torch::tensor({0.5609f, 0.5384f, 0.8720f});
  weights[5] = torch::tensor({0.6262f, 0.2438f, 0.7471f});
  const auto input = torch::tensor({{0, 2, 0, 5}});
  const auto expected = torch::tensor({{{0.0000f, 0.0000f, 0.0000f},
                                        {0.5609f, 0.5384f, 0.8720f},
                                        {0.0000f, 0.0000f, 0.0000f},
                                        {0.6262f, 0.2438f, 0.7471f}}});
  EXPECT_TRUE(
      F::embedding(on_device(input), on_device(weights), F::EmbeddingFuncOptions().padding_idx(0))
          .cpu()
          .equal(expected));
}

INSTANTIATE_BACKEND_SUITE(SpecExamples);

class Padding : public BackendTest {};

// Contract rule 4 (docs/CONTRACT.md): the output at padding positions is whatever the padding
// row holds (not forced to 0).
TEST_P(Padding, OutputShowsThePaddingRowAsIs) {
  const auto weight = torch::randn({6, 2});
  const auto input = torch::tensor({5, 1, 5});
  for (int64_t padding : {5, -1}) {
    const auto out = F::embedding(on_device(input), on_device(weight), padding).cpu();
    EXPECT_TRUE(out[0].equal(weight[5]));
    EXPECT_TRUE(out[2].equal(weight[5]));
  }
}

INSTANTIATE_BACKEND_SUITE(Padding);

}  // namespace
