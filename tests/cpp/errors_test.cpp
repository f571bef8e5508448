// Contract rules 3, 4, 6, 10, 11 and 12: every bad input raises the right error class with a
// message naming the argument and the bad value, and leaves the weight bit-for-bit unchanged
// (also when max_norm is set and would otherwise have renormed rows before the bad index), on
// every backend (backends.h), under the kRaise index-check policy (RaisingIndexErrorsTest).
#include <unit_scaling/functional.h>

#include <limits>

#include "backends.h"
#include "test_support.h"

namespace F = unit_scaling::functional;
using namespace unit_scaling::testing;

namespace {

enum class ErrorClass { kIndex, kValue, kType };

struct BadCall {
  std::string name;
  ErrorClass error;
  std::vector<std::string> needles;
  std::function<at::Tensor()> make_weight;
  std::function<at::Tensor()> make_input;
  F::EmbeddingFuncOptions options;
  bool add_max_norm = true;      // also try it with a max_norm that would renorm every row
  bool input_on_backend = true;  // false: make_input's tensor is used where it is
};

at::Tensor big_rows() { return torch::randn({10, 4}) * 3 + 5; }  // every row norm > 0.5
at::Tensor longs(std::vector<int64_t> values) { return torch::tensor(values, torch::kLong); }

constexpr int64_t kMin64 = std::numeric_limits<int64_t>::min();
constexpr int64_t kMax64 = std::numeric_limits<int64_t>::max();
constexpr int32_t kMin32 = std::numeric_limits<int32_t>::min();
const double kNaN = std::numeric_limits<double>::quiet_NaN();

// The device of the other operand in the different-devices calls: CPU against a CUDA backend, meta
// against the CPU ones.
c10::Device other_device(c10::Device device) {
  return device.is_cuda() ? c10::Device(c10::kCPU) : c10::Device(c10::kMeta);
}

// The bad calls, weights and inputs made on the CPU (the test moves them to the backend's device).
std::vector<BadCall> bad_calls(c10::Device device) {
  const auto opts = [] { return F::EmbeddingFuncOptions(); };
  const c10::Device other = other_device(device);
  return {
      {"index_equal_to_V",
       ErrorClass::kIndex,
       {"index 10", "input[2]", "10 rows"},
       big_rows,
       [] {
         return longs({1, 2, 10, 3});
       },
       opts()},
      {"index_minus_one",
       ErrorClass::kIndex,
       {"index -1", "input[1]"},
       big_rows,
       [] {
         return longs({3, -1});
       },
       opts()},
      {"index_int64_min",
       ErrorClass::kIndex,
       {"index " + std::to_string(kMin64)},
       big_rows,
       [] {
         return longs({0, 1, kMin64});
       },
       opts()},
      {"index_int64_max_in_2d",
       ErrorClass::kIndex,
       {std::to_string(kMax64), "input[1, 0]"},
       big_rows,
       [] {
         return longs({0, 1, kMax64, 2}).view({2, 2});
       },
       opts()},
      {"int32_index_equal_to_V",
       ErrorClass::kIndex,
       {"index 10", "input[3]"},
       big_rows,
       [] {
         return torch::tensor({0, 1, 2, 10}, torch::kInt);
       },
       opts()},
      {"int32_index_min",
       ErrorClass::kIndex,
       {"index " + std::to_string(kMin32)},
       big_rows,
       [] {
         return torch::tensor({4, kMin32}, torch::kInt);
       },
       opts()},
      {"index_into_empty_table",
       ErrorClass::kIndex,
       {"index 0", "0 rows"},
       [] {
         return torch::randn({0, 4});
       },
       [] { return longs({0}); },
       opts()},
      {"padding_idx_equal_to_V",
       ErrorClass::kValue,
       {"padding_idx=10", "-10 <= padding_idx < 10"},
       big_rows,
       [] { return longs({1}); },
       opts().padding_idx(10)},
      {"padding_idx_below_minus_V",
       ErrorClass::kValue,
       {"padding_idx=-11"},
       big_rows,
       [] { return longs({1}); },
       opts().padding_idx(-11)},
      {"padding_idx_int64_max",
       ErrorClass::kValue,
       {"padding_idx=" + std::to_string(kMax64)},
       big_rows,
       [] { return longs({1}); },
       opts().padding_idx(kMax64)},
      {"max_norm_zero",
       ErrorClass::kValue,
       {"max_norm=0"},
       big_rows,
       [] { return longs({1}); },
       opts().max_norm(0.0),
       false},
      {"max_norm_negative",
       ErrorClass::kValue,
       {"max_norm=-1"},
       big_rows,
       [] { return longs({1}); },
       opts().max_norm(-1.0),
       false},
      {"max_norm_nan",
       ErrorClass::kValue,
       {"max_norm=nan"},
       big_rows,
       [] { return longs({1}); },
       opts().max_norm(kNaN),
       false},
      {"norm_type_zero",
       ErrorClass::kValue,
       {"norm_type=0"},
       big_rows,
       [] { return longs({1}); },
       opts().norm_type(0.0)},
      {"norm_type_negative",
       ErrorClass::kValue,
       {"norm_type=-2"},
       big_rows,
       [] { return longs({1}); },
       opts().norm_type(-2.0)},
      {"norm_type_nan",
       ErrorClass::kValue,
       {"norm_type=nan"},
       big_rows,
       [] { return longs({1}); },
       opts().norm_type(kNaN)},
      {"float_indices",
       ErrorClass::kType,
       {"input", "Float"},
       big_rows,
       [] {
         return torch::tensor({1.0f, 2.0f});
       },
       opts()},
      {"bool_indices",
       ErrorClass::kType,
       {"input", "Bool"},
       big_rows,
       [] {
         return torch::tensor({true, false});
       },
       opts()},
      {"int16_indices",
       ErrorClass::kType,
       {"input", "Short"},
       big_rows,
       [] {
         return torch::tensor({1, 2}, torch::kShort);
       },
       opts()},
      {"weight_1d",
       ErrorClass::kValue,
       {"weight", "2-D", "[10]"},
       [] { return torch::randn({10}) + 5; },
       [] { return longs({1}); },
       opts()},
      {"weight_3d",
       ErrorClass::kValue,
       {"weight", "2-D", "[10, 4, 2]"},
       [] {
         return torch::randn({10, 4, 2}) + 5;
       },
       [] { return longs({1}); },
       opts()},
      {"integer_weight",
       ErrorClass::kType,
       {"weight", "Long"},
       [] {
         return torch::randint(5, 50, {10, 4});
       },
       [] { return longs({1}); },
       opts()},
      {"complex_weight",
       ErrorClass::kType,
       {"weight", "ComplexFloat"},
       [] {
         return torch::randn({10, 4}, torch::kComplexFloat) + 5;
       },
       [] { return longs({1}); },
       opts()},
      {"scale_grad_by_freq",
       ErrorClass::kValue,
       {"scale_grad_by_freq", "not supported"},
       big_rows,
       [] { return longs({1}); },
       opts().scale_grad_by_freq(true)},
      {"sparse",
       ErrorClass::kValue,
       {"sparse", "not supported"},
       big_rows,
       [] { return longs({1}); },
       opts().sparse(true)},
      {"input_on_another_device",
       ErrorClass::kValue,
       {"input is on " + other.str(), "weight is on " + device.str()},
       big_rows,
       [other] { return torch::empty({3}, torch::TensorOptions(torch::kLong).device(other)); },
       opts(),
       true,
       false},
      {"sparse_layout_input",
       ErrorClass::kType,
       {"input", "layout"},
       big_rows,
       [] {
         return longs({1, 2}).to_sparse();
       },
       opts()},
      {"undefined_input",
       ErrorClass::kType,
       {"input", "undefined"},
       big_rows,
       [] { return at::Tensor(); },
       opts()},
  };
}

void expect_error_of_class(ErrorClass error, const std::function<void()>& call,
                           const std::vector<std::string>& needles) {
  switch (error) {
    case ErrorClass::kIndex:
      return expect_error<c10::IndexError>(call, needles);
    case ErrorClass::kValue:
      return expect_error<c10::ValueError>(call, needles);
    case ErrorClass::kType:
      return expect_error<c10::TypeError>(call, needles);
  }
}

class Atomicity : public RaisingIndexErrorsTest {};

TEST_P(Atomicity, EveryBadCallThrowsTheRightClassAndLeavesWeightUnchanged) {
  torch::manual_seed(9);
  for (const auto& bad : bad_calls(device())) {
    for (bool with_max_norm : {false, true}) {
      if (with_max_norm && !bad.add_max_norm) continue;
      SCOPED_TRACE(bad.name + (with_max_norm ? " with max_norm" : ""));
      auto weight = on_device(bad.make_weight());
      const auto before = weight.clone();
      const int64_t version = weight._version();
      auto options = bad.options;
      if (with_max_norm) options.max_norm(0.5);
      const auto input = bad.input_on_backend ? on_device(bad.make_input()) : bad.make_input();
      expect_error_of_class(
          bad.error, [&] { F::embedding(input, weight, options); }, bad.needles);
      EXPECT_TRUE(bitwise_equal(weight, before)) << "weight was modified";
      EXPECT_EQ(weight._version(), version);
    }
  }
}

TEST_P(Atomicity, SameValidationForThePositionalOverloadAndGradMode) {
  auto weight = on_device(big_rows()).requires_grad_();
  const auto before = weight.detach().clone();
  expect_error<c10::IndexError>(
      [&] {
        F::embedding(on_device(longs({0, 10})), weight, {}, 0.5);
      },
      {"index 10"});
  EXPECT_TRUE(bitwise_equal(weight.detach(), before));
}

// One operand on the backend's device, the other elsewhere (meta for the CPU backends, the CPU
// for CUDA): a ValueError naming both devices, and a weight with data left unchanged.
TEST_P(Atomicity, WeightOnAnotherDevice) {
  const c10::Device other = other_device(device());
  for (bool weight_elsewhere : {true, false}) {
    for (bool with_max_norm : {false, true}) {
      SCOPED_TRACE(std::string(weight_elsewhere ? "weight" : "input") + " on " + other.str() +
                   (with_max_norm ? " with max_norm" : ""));
      auto weight = weight_elsewhere ? big_rows().to(other) : on_device(big_rows());
      const auto input = weight_elsewhere ? on_device(longs({1})) : longs({1}).to(other);
      const auto before = weight.clone();
      auto options = F::EmbeddingFuncOptions();
      if (with_max_norm) options.max_norm(0.5);
      expect_error<c10::ValueError>(
          [&] { F::embedding(input, weight, options); },
          {"input is on " + input.device().str(), "weight is on " + weight.device().str()});
      if (!weight.is_meta()) {
        EXPECT_TRUE(bitwise_equal(weight, before));
      }
    }
  }
}

TEST_P(Atomicity, MaxNormOnAWeightWithSharedMemoryIsRejected) {
  auto base = on_device(torch::randn({1, 4}) + 5);
  auto weight = base.expand({10, 4});
  const auto before = base.clone();
  expect_error<c10::ValueError>(
      [&] {
        F::embedding(on_device(longs({1, 2})), weight, F::EmbeddingFuncOptions().max_norm(0.5));
      },
      {"max_norm", "weight"});
  EXPECT_TRUE(bitwise_equal(base, before));
  // Without max_norm a broadcast table is fine: it is only read.
  EXPECT_TRUE(F::embedding(on_device(longs({1, 2})), weight).equal(base.expand({2, 4})));
}

TEST_P(Atomicity, ValidIndicesAfterAnErrorStillWork) {
  auto weight = on_device(big_rows());
  EXPECT_THROW(F::embedding(on_device(longs({0, 99})), weight, {}, 0.5), c10::IndexError);
  const auto out = F::embedding(on_device(longs({0, 9})), weight, {}, 0.5);
  EXPECT_NEAR(out[0].norm().item<double>(), 0.5, 1e-5);
}

// A bad index leaves the weight alone (the renorm did not run), a 2-D position is named, and then
// a valid call renorms the rows it references, once each, and nothing else.
TEST_P(Atomicity, BadIndicesThenAValidRenorm) {
  auto weight = on_device(big_rows());
  const auto before = weight.clone();
  EXPECT_THROW(F::embedding(on_device(longs({1, 2, 10})), weight, {}, 0.5), c10::IndexError);
  EXPECT_TRUE(bitwise_equal(weight, before));
  expect_error<c10::IndexError>(
      [&] {
        F::embedding(on_device(longs({0, 1, -1, 2}).view({2, 2})), weight);
      },
      {"index -1", "input[1, 0]"});
  const int64_t version = weight._version();
  F::embedding(on_device(longs({1, 1, 2})), weight, {}, 0.5);
  EXPECT_GT(weight._version(), version);
  EXPECT_NEAR(weight[1].norm().item<double>(), 0.5, 1e-5);
  EXPECT_TRUE(bitwise_equal(weight[3], before[3]));
}

INSTANTIATE_BACKEND_SUITE(Atomicity);

}  // namespace
