// Every registered operator checks its own arguments, called directly through the dispatcher
// (as torch.ops.unit_scaling.* does from Python): the same error classes and messages as the
// public op, and nothing written or allocated from an unchecked value. On every backend
// (backends.h), except the module's clone at the end. Bad indices raise IndexError under the
// kRaise index-check policy (RaisingIndexErrorsTest); device_assertion_test.cpp pins the default.
#include <unit_scaling/unit_scaling.h>

#include "backends.h"
#include "operators.h"
#include "test_support.h"

namespace {

using unit_scaling::detail::call_backward;
using unit_scaling::detail::call_lookup;
using unit_scaling::detail::CallOptions;
using unit_scaling::detail::renorm_op;
using unit_scaling::testing::BackendTest;
using unit_scaling::testing::bitwise_equal;
using unit_scaling::testing::expect_error;

at::Tensor longs(std::vector<int64_t> values) { return torch::tensor(values, torch::kLong); }

at::Tensor backward(const at::Tensor& grad, const at::Tensor& input, int64_t rows,
                    std::optional<int64_t> padding = std::nullopt) {
  CallOptions options;
  if (padding) options.padding_idx = c10::SymInt(*padding);
  return call_backward(grad, input, rows, options);
}

class OperatorChecks : public unit_scaling::testing::RaisingIndexErrorsTest {};

// The CPU kernels find them in the counting sort's pass, the fallback in its index reduction.
TEST_P(OperatorChecks, BackwardRejectsBadIndices) {
  const auto grad = on_device(torch::randn({4, 8}));
  expect_error<c10::IndexError>(
      [&] {
        backward(grad, on_device(longs({0, 1, 2, 1000000})), 10);
      },
      {"index 1000000 at input[3]", "10 rows"});
  expect_error<c10::IndexError>(
      [&] {
        backward(grad, on_device(longs({0, 1, 2, -5})), 10);
      },
      {"index -5 at input[3]"});
  expect_error<c10::IndexError>(
      [&] {
        backward(grad.view({2, 2, 8}), on_device(longs({0, 1, 10, 2})).view({2, 2}), 10);
      },
      {"index 10 at input[1, 0]"});
  expect_error<c10::IndexError>(
      [&] {
        backward(grad, on_device(torch::tensor({0, 1, 2, 10}, torch::kInt)), 10, 1);
      },
      {"index 10 at input[3]"});
}

TEST_P(OperatorChecks, BackwardRejectsBadShapesDtypesAndSizes) {
  const auto input = on_device(longs({0, 1, 2, 3}));
  expect_error<c10::ValueError>(
      [&] {
        backward(on_device(torch::randn({1, 8})), input, 10);
      },
      {"grad_output must have shape input.shape + (D,)", "[1, 8]"});
  expect_error<c10::ValueError>([&] { backward(on_device(torch::randn({4})), input, 10); },
                                {"grad_output must have shape"});
  expect_error<c10::TypeError>(
      [&] {
        backward(on_device(torch::ones({4, 8}, torch::kUInt8)), input, 64);
      },
      {"grad_output must be float32, float64, float16 or bfloat16", "Byte"});
  expect_error<c10::TypeError>(
      [&] {
        backward(on_device(torch::ones({4, 8})), on_device(torch::tensor({0., 1.5, 2., 3.})), 10);
      },
      {"input must hold int64 or int32 indices", "Float"});
  expect_error<c10::ValueError>(
      [&] {
        backward(on_device(torch::randn({4, 8})), input, -1);
      },
      {"num_weights must be >= 0, got num_weights=-1"});
  expect_error<c10::ValueError>(
      [&] {
        backward(on_device(torch::randn({4, 8})), input, 10, 10);
      },
      {"padding_idx=10 is out of range"});
  expect_error<c10::ValueError>(
      [&] {
        backward(on_device(torch::randn({4, 8})), input, int64_t{1} << 62);
      },
      {"overflows int64"});
}

TEST_P(OperatorChecks, BackwardStillComputesTheReference) {
  const auto input = longs({3, 1, 3, 0, 2});
  const auto grad = torch::randn({5, 6});
  const auto ours = backward(on_device(grad), on_device(input), 4, -1);  // padding row 3 (wrapped)
  EXPECT_EQ(ours.device(), device());
  unit_scaling::testing::expect_gradient_matches(ours, input, grad, 4, 3);
}

TEST_P(OperatorChecks, LookupAndRenormCheckTheirOwnArguments) {
  const auto weight = on_device(torch::randn({5, 3}));
  expect_error<c10::ValueError>(
      [&] {
        CallOptions options;
        options.padding_idx = c10::SymInt(5);
        call_lookup(on_device(longs({1})), weight, options);
      },
      {"padding_idx=5 is out of range for weight with 5 rows"});
  expect_error<c10::IndexError>(
      [&] {
        call_lookup(on_device(longs({1, -1})), weight);
      },
      {"index -1 at input[1]"});
  expect_error<c10::TypeError>([&] { call_lookup(on_device(longs({1})), weight.to(torch::kInt)); },
                               {"weight must be float32"});
  auto table = on_device(torch::randn({5, 3}) * 10);
  const auto before = table.clone();
  expect_error<c10::IndexError>(
      [&] {
        renorm_op().call(table, on_device(longs({0, 1, 5})), 1.0, 2.0);
      },
      {"index 5 at input[2]"});
  expect_error<c10::ValueError>([&] { renorm_op().call(table, on_device(longs({0})), 0.0, 2.0); },
                                {"max_norm must be > 0"});
  expect_error<c10::ValueError>([&] { renorm_op().call(table, on_device(longs({0})), 1.0, -1.0); },
                                {"norm_type must be > 0"});
  EXPECT_TRUE(bitwise_equal(table, before));
}

TEST_P(OperatorChecks, MaxNormRejectsEveryOverlappingLayout) {
  // Rows overlapping in memory, including layouts at::has_internal_overlap calls "too hard".
  const std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> layouts{
      {{5, 5}, {1, 1}}, {{4, 3}, {2, 1}}, {{3, 4}, {1, 2}}, {{6, 2}, {0, 1}}, {{3, 3}, {2, 2}}};
  for (const auto& [sizes, strides] : layouts) {
    auto storage = on_device(torch::randn({64}) * 10);
    const auto before = storage.clone();
    auto weight = storage.as_strided(sizes, strides);
    expect_error<c10::ValueError>(
        [&] {
          unit_scaling::functional::embedding(on_device(longs({0, 1})), weight, {}, 0.5);
        },
        {"may have several elements sharing memory"});
    expect_error<c10::ValueError>(
        [&] {
          renorm_op().call(weight, on_device(longs({0, 1})), 0.5, 2.0);
        },
        {"sharing memory"});
    EXPECT_TRUE(bitwise_equal(storage, before));
  }
  // Non-overlapping strided layouts stay accepted: transposed, sliced, padded rows, size-1 dims.
  auto base = on_device(torch::randn({6, 8}) * 10);
  for (const auto& weight : {base.t(), base.narrow(1, 0, 3), base.as_strided({4, 3}, {8, 2}),
                             base.as_strided({1, 4}, {0, 1}), base.as_strided({4, 1}, {9, 0})}) {
    EXPECT_NO_THROW(renorm_op().call(weight, on_device(longs({0})), 0.5, 2.0));
  }
}

TEST_P(OperatorChecks, ScalePrimitivesNeedAFiniteScale) {
  const auto ones = on_device(torch::ones({2}));
  for (double scale : {std::nan(""), HUGE_VAL, -HUGE_VAL}) {
    expect_error<c10::ValueError>([&] { unit_scaling::scale_fwd(ones, scale); },
                                  {"scale_fwd: scale must be finite"});
    expect_error<c10::ValueError>([&] { unit_scaling::scale_bwd(ones, scale); },
                                  {"scale_bwd: scale must be finite"});
  }
  expect_error<c10::TypeError>([&] { unit_scaling::scale_fwd(at::Tensor(), 1.0); },
                               {"x is an undefined tensor"});
}

TEST_P(OperatorChecks, IndicesChangedAfterTheForwardAreCaughtByTheBackward) {
  auto weight = on_device(torch::randn({10, 4})).requires_grad_();
  auto input = on_device(longs({1, 2, 3}));
  const auto out = unit_scaling::functional::embedding(input, weight);
  input.data()[0] = 10000000;  // stock PyTorch survives this; we must not crash
  expect_error<c10::IndexError>([&] { out.sum().backward(); }, {"index 10000000 at input[0]"});
}

TEST_P(OperatorChecks, DoubleBackwardMasksThePaddingRowInsteadOfMultiplyingByZero) {
  for (double poison : {HUGE_VAL, std::nan("")}) {
    auto weight = on_device(torch::randn({6, 3})).requires_grad_();
    const auto input = on_device(longs({2, 0, 2, 5}));
    const auto out = unit_scaling::functional::embedding(input, weight, 2);
    auto grad_out = on_device(torch::randn({4, 3})).requires_grad_();
    const auto grad_weight =
        torch::autograd::grad({out}, {weight}, {grad_out}, true, /*create_graph=*/true)[0];
    auto grad_grad_weight = on_device(torch::randn({6, 3}));
    grad_grad_weight[2].fill_(poison);
    const auto result = torch::autograd::grad({grad_weight}, {grad_out}, {grad_grad_weight})[0];
    const double s = std::sqrt(6.0 / 4.0);
    EXPECT_TRUE(result[0].eq(0).all().item<bool>());
    EXPECT_TRUE(result[2].eq(0).all().item<bool>());
    EXPECT_TRUE(torch::allclose(result[1], grad_grad_weight[0] * s));
    EXPECT_TRUE(torch::allclose(result[3], grad_grad_weight[5] * s));
    // PyTorch's own double backward agrees at the padding positions.
    auto plain_weight = weight.detach().clone().requires_grad_();
    const auto plain = torch::nn::functional::embedding(
        input, plain_weight, torch::nn::functional::EmbeddingFuncOptions().padding_idx(2));
    const auto plain_gw = torch::autograd::grad({plain}, {plain_weight}, {grad_out}, true, true)[0];
    const auto plain_result = torch::autograd::grad({plain_gw}, {grad_out}, {grad_grad_weight})[0];
    EXPECT_TRUE(plain_result[0].eq(0).all().item<bool>());
  }
}

INSTANTIATE_BACKEND_SUITE(OperatorChecks);

TEST(ModuleClone, CloneOfAPretrainedModuleIsIndependentAndKeepsRequiresGrad) {
  namespace nn = unit_scaling::nn;
  const auto table = torch::randn({6, 3});
  for (bool freeze : {true, false}) {
    auto original = nn::Embedding::from_pretrained(
        table.clone(), nn::EmbeddingFromPretrainedOptions().freeze(freeze));
    const auto before = original->weight.detach().clone();
    auto copy = std::dynamic_pointer_cast<nn::EmbeddingImpl>(original->clone());
    ASSERT_TRUE(copy);
    EXPECT_EQ(original->weight.requires_grad(), !freeze);
    EXPECT_EQ(copy->weight.requires_grad(), !freeze);
    EXPECT_NE(copy->weight.data_ptr(), original->weight.data_ptr());
    EXPECT_TRUE(bitwise_equal(copy->weight.detach(), before));
    {
      torch::NoGradGuard no_grad;
      copy->weight.fill_(7);
    }
    EXPECT_TRUE(bitwise_equal(original->weight.detach(), before));
    // A clone of the clone is independent too.
    auto second = std::dynamic_pointer_cast<nn::EmbeddingImpl>(copy->clone());
    EXPECT_NE(second->weight.data_ptr(), copy->weight.data_ptr());
    EXPECT_TRUE(bitwise_equal(second->weight.detach(), copy->weight.detach()));
  }
  // A module given a plain table through options._weight behaves the same.
  nn::Embedding given(nn::EmbeddingOptions(6, 3)._weight(table.clone()));
  auto copy = std::dynamic_pointer_cast<nn::EmbeddingImpl>(given->clone());
  EXPECT_NE(copy->weight.data_ptr(), given->weight.data_ptr());
}

}  // namespace
