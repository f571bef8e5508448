// Where values land in a low-precision format: flushed to zero, subnormal, saturated, and the
// relative error of a saturating round trip.
#pragma once

#include <ATen/core/Tensor.h>

#include <string>

namespace unit_scaling::report {

struct FloatFormat {
  std::string name;
  at::ScalarType type;
  double max;            // largest finite value
  double min_normal;     // smallest positive normal
  double min_subnormal;  // smallest positive subnormal
};

// float16, bfloat16, e4m3 (OCP E4M3 = float8_e4m3fn) or e5m2 (float8_e5m2).
const FloatFormat& float_format(const std::string& name);

// Casts to the format and back to float64, clamping to [-max, max] first: out-of-range values
// saturate to the largest finite value instead of becoming inf or NaN.
at::Tensor saturating_round_trip(const at::Tensor& values, const FloatFormat& format);

struct FormatStats {
  int64_t nonzero = 0;        // non-zero values considered
  double flush_to_zero = 0;   // fraction of them that become 0
  double subnormal = 0;       // fraction landing on a non-zero subnormal
  double saturated = 0;       // fraction with |x| > max
  double relative_error = 0;  // ||q(x) - x|| / ||x|| over them
};

// Statistics over the non-zero entries of `values` (any floating dtype).
FormatStats format_stats(const at::Tensor& values, const FloatFormat& format);

}  // namespace unit_scaling::report
