// 64-bit offsets: a table with more than 2^31 elements, an output with more than 2^31 elements
// from an expanded input, and requests whose output would overflow int64 (rejected before any
// allocation), on every backend (backends.h). Skipped, with a message, on machines without the
// memory: host memory for the CPU backends (checked against MemAvailable); on a GPU the data is
// made on the device and the host needs next to nothing.
#include <unit_scaling/functional.h>

#include <fstream>
#include <limits>
#include <string>

#include "backends.h"
#include "test_support.h"

namespace F = unit_scaling::functional;
using namespace unit_scaling::testing;

namespace {

int64_t available_gib() {
  std::ifstream meminfo("/proc/meminfo");
  std::string key;
  int64_t kib = 0;
  std::string unit;
  while (meminfo >> key >> kib >> unit) {
    if (key == "MemAvailable:") return kib >> 20;
  }
  return 0;
}

// Host memory a CPU backend's test needs.
#define REQUIRE_GIB(n)                            \
  if (device().is_cpu() && available_gib() < (n)) \
  GTEST_SKIP() << "needs " << (n) << " GiB of free memory, the machine has " << available_gib()

class LargeSizes : public BackendTest {
 protected:
  static constexpr int64_t kRows = int64_t{1} << 29, kDim = 5;  // 2.7e9 elements, 5 GiB of fp16
  // The rows the tests look up: the last one, one past 2^31 elements, and a small one.
  static constexpr int64_t kFarRows[] = {kRows - 1, (int64_t{1} << 31) / kDim + 3, 7};

  // The kRows x kDim float16 table on the device, zero but for the rows in kFarRows.
  at::Tensor far_table() const {
    auto weight = torch::zeros({kRows, kDim}, options(torch::kHalf));
    for (int64_t r : kFarRows) {
      weight[r] = on_device(torch::arange(1, kDim + 1, torch::kHalf) * (r % 100 + 1));
    }
    return weight;
  }
  at::Tensor far_input() const {
    return on_device(torch::tensor({kFarRows[0], kFarRows[1], kFarRows[2], kFarRows[0]}));
  }
};

TEST_P(LargeSizes, TableOverTwoToTheThirtyOneElementsLookup) {
  REQUIRE_GIB(8);  // the 5 GiB table
  const auto weight = far_table();
  const auto input = far_input();
  const auto out = F::embedding(input, weight);
  for (int64_t i = 0; i < 4; ++i) EXPECT_TRUE(out[i].equal(weight[input[i].item<int64_t>()]));
}

TEST_P(LargeSizes, TableOverTwoToTheThirtyOneElementsGradient) {
  if (backend() == Backend::kAtenFallback) {
    GTEST_SKIP() << "the ATen fallback's backward accumulates in a float32 V x D copy: 20 GiB at "
                    "peak for this table (5 GiB fp16 weight + 10 GiB fp32 sum + 5 GiB fp16 "
                    "gradient), over the 20 GiB this suite may use on a CPU machine";
  }
  REQUIRE_GIB(14);  // the table and its 5 GiB gradient
  auto param = far_table().requires_grad_();
  const auto input = far_input();
  const auto out = F::embedding(input, param);
  out.backward(torch::ones_like(out));
  const auto grad = param.grad();
  const double s = std::sqrt(static_cast<double>(kRows) / 4.0);
  EXPECT_EQ(grad[kFarRows[0]][4].item<double>(), static_cast<double>(c10::Half(2 * s)));
  EXPECT_EQ(grad[kFarRows[1]][0].item<double>(), static_cast<double>(c10::Half(s)));
  EXPECT_EQ(grad[kRows - 2][0].item<double>(), 0.0);
}

TEST_P(LargeSizes, OutputOverTwoToTheThirtyOneElementsFromAnExpandedInput) {
  REQUIRE_GIB(10);
  const int64_t n = (int64_t{1} << 28) + 1, dim = 8;  // output 2^31 + 8 float16 elements
  auto weight = on_device(torch::randn({3, dim}).to(torch::kHalf));
  const auto input = on_device(torch::tensor({2}, torch::kInt)).expand({n});  // stride 0: 4 bytes
  const auto out = F::embedding(input, weight);
  ASSERT_EQ(out.numel(), n * dim);
  EXPECT_TRUE(out[n - 1].equal(weight[2]));
  EXPECT_TRUE(out[n / 2].equal(weight[2]));
}

TEST_P(LargeSizes, OutputSizeOverflowIsAValueErrorBeforeAllocating) {
  const int64_t big = int64_t{1} << 31;
  const auto input = on_device(torch::zeros({1, 1}, torch::kLong)).expand({big, big});  // 2^62
  const auto weight = on_device(torch::randn({4, 8}));
  expect_error<c10::ValueError>([&] { F::embedding(input, weight); }, {"overflows int64"});
}

INSTANTIATE_BACKEND_SUITE(LargeSizes);

}  // namespace
