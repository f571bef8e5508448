#include "unit_scaling_report/format_stats.h"

#include <ATen/ATen.h>

#include <cmath>
#include <stdexcept>
#include <vector>

namespace unit_scaling::report {

const FloatFormat& float_format(const std::string& name) {
  static const std::vector<FloatFormat> formats{
      {"float16", at::kHalf, 65504.0, std::ldexp(1.0, -14), std::ldexp(1.0, -24)},
      {"bfloat16", at::kBFloat16, 3.38953138925153547590e38, std::ldexp(1.0, -126),
       std::ldexp(1.0, -133)},
      {"e4m3", at::kFloat8_e4m3fn, 448.0, std::ldexp(1.0, -6), std::ldexp(1.0, -9)},
      {"e5m2", at::kFloat8_e5m2, 57344.0, std::ldexp(1.0, -14), std::ldexp(1.0, -16)},
  };
  for (const auto& format : formats) {
    if (format.name == name) return format;
  }
  throw std::invalid_argument("unknown format " + name);
}

at::Tensor saturating_round_trip(const at::Tensor& values, const FloatFormat& format) {
  return values.to(at::kFloat).clamp(-format.max, format.max).to(format.type).to(at::kDouble);
}

FormatStats format_stats(const at::Tensor& values, const FloatFormat& format) {
  const at::Tensor flat = values.reshape({-1}).to(at::kDouble);
  const at::Tensor x = flat.masked_select(flat.ne(0));
  FormatStats stats;
  stats.nonzero = x.numel();
  if (stats.nonzero == 0) return stats;
  const at::Tensor q = saturating_round_trip(x, format);
  const auto fraction = [&](const at::Tensor& mask) {
    return mask.to(at::kDouble).mean().item<double>();
  };
  stats.flush_to_zero = fraction(q.eq(0));
  stats.subnormal = fraction(q.ne(0).logical_and(q.abs().lt(format.min_normal)));
  stats.saturated = fraction(x.abs().gt(format.max));
  stats.relative_error = ((q - x).norm() / x.norm()).item<double>();
  return stats;
}

}  // namespace unit_scaling::report
