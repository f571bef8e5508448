// The report's format statistics against hand-computed cases: values at each format's max, min
// normal and min subnormal, just below half the min subnormal, and beyond max.
#include "unit_scaling_report/format_stats.h"

#include <cmath>

#include "test_support.h"

namespace report = unit_scaling::report;

namespace {

struct Case {
  const char* name;
  double max, min_normal, min_subnormal;
};

class FormatStats : public ::testing::TestWithParam<Case> {};

TEST_P(FormatStats, HandComputedCases) {
  const Case c = GetParam();
  const report::FloatFormat& format = report::float_format(c.name);
  EXPECT_EQ(format.max, c.max);
  EXPECT_EQ(format.min_normal, c.min_normal);
  EXPECT_EQ(format.min_subnormal, c.min_subnormal);
  // max: normal, exact; min normal: exact, not subnormal; min subnormal: exact, subnormal;
  // 0.99 * min_subnormal / 2: flushes to zero; 2 * max: saturates to max; 0 is ignored.
  const auto values = torch::tensor(
      {c.max, -c.min_normal, c.min_subnormal, 0.99 * c.min_subnormal / 2, -2 * c.max, 0.0},
      torch::kDouble);
  const report::FormatStats stats = report::format_stats(values, format);
  EXPECT_EQ(stats.nonzero, 5);
  EXPECT_DOUBLE_EQ(stats.flush_to_zero, 0.2);
  EXPECT_DOUBLE_EQ(stats.subnormal, 0.2);
  EXPECT_DOUBLE_EQ(stats.saturated, 0.2);
  // Errors: the flushed value loses all of itself, the saturated one half of itself.
  const double lost = std::hypot(0.99 * c.min_subnormal / 2, c.max);
  const double norm =
      std::sqrt(c.max * c.max + c.min_normal * c.min_normal + c.min_subnormal * c.min_subnormal +
                std::pow(0.99 * c.min_subnormal / 2, 2) + 4 * c.max * c.max);
  EXPECT_NEAR(stats.relative_error, lost / norm, 1e-12);
  // The round trip saturates instead of producing inf or NaN.
  const auto q = report::saturating_round_trip(values, format);
  EXPECT_TRUE(q.isfinite().all().item<bool>());
  EXPECT_EQ(q[4].item<double>(), -c.max);
}

INSTANTIATE_TEST_SUITE_P(Formats, FormatStats,
                         ::testing::Values(Case{"float16", 65504.0, 0x1p-14, 0x1p-24},
                                           Case{"bfloat16", 0x1.fep127, 0x1p-126, 0x1p-133},
                                           Case{"e4m3", 448.0, 0x1p-6, 0x1p-9},
                                           Case{"e5m2", 57344.0, 0x1p-14, 0x1p-16}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(FormatStatsEdge, AllZeroInputHasNoStatistics) {
  const auto stats = report::format_stats(torch::zeros({4}), report::float_format("e4m3"));
  EXPECT_EQ(stats.nonzero, 0);
  EXPECT_EQ(stats.flush_to_zero, 0);
}

}  // namespace
