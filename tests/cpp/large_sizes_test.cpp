// 64-bit offsets: a table with more than 2^31 elements, an output with more than 2^31 elements
// from an expanded input, and requests whose output would overflow int64 (rejected before any
// allocation). Skipped, with a message, on machines without the memory.
#include <unit_scaling/functional.h>

#include <fstream>
#include <limits>
#include <string>

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

#define REQUIRE_GIB(n)       \
  if (available_gib() < (n)) \
  GTEST_SKIP() << "needs " << (n) << " GiB of free memory, the machine has " << available_gib()

TEST(LargeSizes, TableOverTwoToTheThirtyOneElements) {
  REQUIRE_GIB(14);
  const int64_t rows = int64_t{1} << 29, dim = 5;  // 2.7e9 elements, 5 GiB of float16
  auto weight = torch::zeros({rows, dim}, torch::kHalf);
  const int64_t far_rows[] = {rows - 1, (int64_t{1} << 31) / dim + 3, 7};
  for (int64_t r : far_rows) weight[r] = torch::arange(1, dim + 1, torch::kHalf) * (r % 100 + 1);
  const auto input = torch::tensor({far_rows[0], far_rows[1], far_rows[2], far_rows[0]});
  const auto out = F::embedding(input, weight);
  for (int64_t i = 0; i < 4; ++i) EXPECT_TRUE(out[i].equal(weight[input[i].item<int64_t>()]));
  auto param = weight.requires_grad_();
  const auto out2 = F::embedding(input, param);
  out2.backward(torch::ones_like(out2));
  const auto grad = param.grad();
  const double s = std::sqrt(static_cast<double>(rows) / 4.0);
  EXPECT_EQ(grad[far_rows[0]][4].item<double>(), static_cast<double>(c10::Half(2 * s)));
  EXPECT_EQ(grad[far_rows[1]][0].item<double>(), static_cast<double>(c10::Half(s)));
  EXPECT_EQ(grad[rows - 2][0].item<double>(), 0.0);
}

TEST(LargeSizes, OutputOverTwoToTheThirtyOneElementsFromAnExpandedInput) {
  REQUIRE_GIB(10);
  const int64_t n = (int64_t{1} << 28) + 1, dim = 8;  // output 2^31 + 8 float16 elements
  auto weight = torch::randn({3, dim}).to(torch::kHalf);
  const auto input = torch::tensor({2}, torch::kInt).expand({n});  // stride 0: 4 bytes
  const auto out = F::embedding(input, weight);
  ASSERT_EQ(out.numel(), n * dim);
  EXPECT_TRUE(out[n - 1].equal(weight[2]));
  EXPECT_TRUE(out[n / 2].equal(weight[2]));
}

TEST(LargeSizes, OutputSizeOverflowIsAValueErrorBeforeAllocating) {
  const int64_t big = int64_t{1} << 31;
  const auto input = torch::zeros({1, 1}, torch::kLong).expand({big, big});  // 2^62 lookups
  const auto weight = torch::randn({4, 8});
  expect_error<c10::ValueError>([&] { F::embedding(input, weight); }, {"overflows int64"});
}

}  // namespace
