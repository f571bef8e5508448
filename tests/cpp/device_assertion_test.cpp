// Contract rule 3 on CUDA under the default index-check policy (kDeviceAssert): a bad index
// reaching any operator is a device-side assertion that names the value, its flat position and
// the row count, and nothing is read back. A device assertion leaves the CUDA context of its
// process unusable, so each one is hit in a child process: a gtest death test in the
// "threadsafe" style, which re-runs this test alone in a fresh process (CUDA does not survive a
// plain fork). The suites of errors_test.cpp and operator_checks_test.cpp pin the kRaise
// policy's IndexError in-process. Also the policy setting itself (index_check_policy.h).
#include <unistd.h>
#include <unit_scaling/unit_scaling.h>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>

#include "backends.h"
#include "operators.h"
#include "test_support.h"

namespace {

namespace F = unit_scaling::functional;
using unit_scaling::index_check_policy;
using unit_scaling::IndexCheckPolicy;
using unit_scaling::IndexCheckPolicyGuard;
using unit_scaling::set_index_check_policy;
using unit_scaling::testing::expect_error;

at::Tensor cuda_longs(std::vector<int64_t> values) {
  return torch::tensor(values, torch::kLong).cuda();
}

// In a child process: `call` under the default policy, then a device synchronisation. The child
// exits with status 3 when that raised (printing the error and the device's printf output, both
// on stderr); `message` must match what it printed.
void expect_device_assertion(const std::function<void()>& call, const std::string& message) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        dup2(STDERR_FILENO, STDOUT_FILENO);  // the device's printf writes to stdout
        set_index_check_policy(IndexCheckPolicy::kDeviceAssert);
        try {
          call();
          torch::cuda::synchronize();
        } catch (const std::exception& error) {
          std::fflush(stdout);
          std::fprintf(stderr, "%s\n", error.what());
          std::fflush(stderr);
          std::_Exit(3);
        }
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(3), message);
}

class DeviceAssertion : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device visible";
  }
};

TEST_F(DeviceAssertion, Forward) {
  const auto weight = torch::randn({10, 4}).cuda();
  expect_device_assertion(
      [&] {
        F::embedding(cuda_longs({0, 1, 2, 1000000}), weight);
      },
      "index 1000000 at input (flat position 3) is out of range for weight with 10 "
      "rows");
  expect_device_assertion(
      [&] {
        F::embedding(cuda_longs({-5, 1}), weight);
      },
      "index -5 at input (flat position 0) is out of range for weight with 10 rows");
}

TEST_F(DeviceAssertion, ForwardWithMaxNorm) {
  const auto weight = torch::randn({10, 4}).cuda() * 10;
  expect_device_assertion(
      [&] {
        F::embedding(cuda_longs({1, 2, 10}), weight, {}, /*max_norm=*/0.5);
      },
      "index 10 at input (flat position 2) is out of range for weight with 10 rows");
}

TEST_F(DeviceAssertion, Backward) {
  const auto grad = torch::randn({4, 8}).cuda();
  expect_device_assertion(
      [&] {
        unit_scaling::detail::scaled_backward_op().call(grad, cuda_longs({0, 1, 2, 1000000}),
                                                        c10::SymInt(10), c10::SymInt(-1), 1.0);
      },
      "index 1000000 at input (flat position 3) is out of range for weight with 10 rows");
}

TEST_F(DeviceAssertion, IndicesChangedAfterTheForward) {
  expect_device_assertion(
      [] {
        auto weight = torch::randn({10, 4}).cuda().requires_grad_();
        auto input = cuda_longs({1, 2, 3});
        const auto out = F::embedding(input, weight);
        input.data()[0] = 10000000;
        out.sum().backward();
      },
      "index 10000000 at input (flat position 0) is out of range for weight with 10 rows");
}

// Under kRaise the same calls raise IndexError in this process and leave the context usable.
TEST_F(DeviceAssertion, RaisePolicyKeepsTheContextUsable) {
  const IndexCheckPolicyGuard raise(IndexCheckPolicy::kRaise);
  auto weight = torch::randn({10, 4}).cuda() * 10;
  const auto before = weight.clone();
  const int64_t version = weight._version();
  expect_error<c10::IndexError>(
      [&] {
        F::embedding(cuda_longs({1, 2, 10}), weight, {}, 0.5);
      },
      {"index 10 at input[2]", "10 rows"});
  EXPECT_TRUE(weight.equal(before));
  EXPECT_EQ(weight._version(), version);
  EXPECT_EQ(F::embedding(cuda_longs({3}), weight).cpu().sizes(), (at::IntArrayRef{1, 4}));
}

TEST(IndexCheckPolicySetting, DefaultNamesAndGuard) {
  EXPECT_EQ(index_check_policy(), IndexCheckPolicy::kDeviceAssert);  // ctest sets no variable
  EXPECT_EQ(unit_scaling::index_check_policy_name(IndexCheckPolicy::kRaise), "raise");
  EXPECT_EQ(unit_scaling::parse_index_check_policy("device_assert"),
            IndexCheckPolicy::kDeviceAssert);
  expect_error<c10::ValueError>([] { unit_scaling::parse_index_check_policy("Raise"); },
                                {"'device_assert' or 'raise'", "'Raise'"});
  {
    const IndexCheckPolicyGuard raise(IndexCheckPolicy::kRaise);
    EXPECT_EQ(index_check_policy(), IndexCheckPolicy::kRaise);
    {
      const IndexCheckPolicyGuard back(IndexCheckPolicy::kDeviceAssert);
      EXPECT_EQ(index_check_policy(), IndexCheckPolicy::kDeviceAssert);
    }
    EXPECT_EQ(index_check_policy(), IndexCheckPolicy::kRaise);
  }
  EXPECT_EQ(index_check_policy(), IndexCheckPolicy::kDeviceAssert);
  // The operators Python uses.
  EXPECT_EQ(c10::Dispatcher::singleton()
                .findSchemaOrThrow("unit_scaling::_index_check_policy", "")
                .typed<std::string()>()
                .call(),
            "device_assert");
}

// The environment variable is read once, at the first use: checked in fresh child processes.
TEST(IndexCheckPolicySetting, EnvironmentVariable) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        setenv("UNIT_SCALING_INDEX_CHECKS", "raise", 1);
        const bool raise = index_check_policy() == IndexCheckPolicy::kRaise;
        setenv("UNIT_SCALING_INDEX_CHECKS", "device_assert", 1);  // not read again
        std::_Exit(raise && index_check_policy() == IndexCheckPolicy::kRaise ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
  EXPECT_EXIT(
      {
        setenv("UNIT_SCALING_INDEX_CHECKS", "sometimes", 1);
        try {
          index_check_policy();
        } catch (const c10::ValueError& error) {
          std::fprintf(stderr, "%s\n", error.what());
          std::_Exit(3);
        }
        std::_Exit(0);
      },
      ::testing::ExitedWithCode(3), "UNIT_SCALING_INDEX_CHECKS='sometimes' must be");
}

}  // namespace
