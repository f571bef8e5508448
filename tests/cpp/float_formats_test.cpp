// The kernels' own float16/bfloat16 conversions against c10::Half / c10::BFloat16.
#include "kernels/float_formats.h"

#include <c10/util/BFloat16.h>
#include <c10/util/Half.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>

namespace kernels = unit_scaling::kernels;

namespace {

TEST(FloatFormats, EveryHalfWidensLikeC10) {
  for (uint32_t bits = 0; bits <= 0xFFFF; ++bits) {
    const float ours = kernels::half_to_float(static_cast<uint16_t>(bits));
    const float reference =
        static_cast<float>(c10::Half(static_cast<uint16_t>(bits), c10::Half::from_bits()));
    if (std::isnan(reference)) {
      EXPECT_TRUE(std::isnan(ours)) << bits;
    } else {
      EXPECT_EQ(kernels::float_bits(ours), kernels::float_bits(reference)) << bits;
    }
  }
}

// Every float32 whose bit pattern is a multiple of `stride`, plus all patterns near the format
// boundaries, must round exactly like c10 (round to nearest even).
void expect_narrowing_matches(uint32_t bits) {
  const float value = kernels::float_from_bits(bits);
  const uint16_t half_ref = c10::Half(value).x;
  const uint16_t bf16_ref = c10::BFloat16(value).x;
  if (std::isnan(value)) {
    EXPECT_TRUE(std::isnan(kernels::half_to_float(kernels::float_to_half(value))));
    EXPECT_TRUE(std::isnan(kernels::bfloat16_to_float(kernels::float_to_bfloat16(value))));
    return;
  }
  ASSERT_EQ(kernels::float_to_half(value), half_ref) << "float bits " << bits;
  ASSERT_EQ(kernels::float_to_bfloat16(value), bf16_ref) << "float bits " << bits;
}

TEST(FloatFormats, FloatNarrowsLikeC10) {
  constexpr uint32_t kStride = 4099;  // prime: hits every mantissa residue pattern over the range
  for (uint64_t bits = 0; bits <= 0xFFFFFFFFull; bits += kStride) {
    expect_narrowing_matches(static_cast<uint32_t>(bits));
  }
  // Dense sweeps around the rounding boundaries of both formats and both signs.
  for (uint32_t sign : {0u, 0x80000000u}) {
    for (uint32_t centre : {0x33000000u, 0x33800000u, 0x38800000u, 0x387FC000u, 0x477FE000u,
                            0x477FF000u, 0x7F7F8000u, 0x7F800000u, 0x00000000u, 0x3F800000u}) {
      for (uint32_t delta = 0; delta < 0x4000; ++delta) {
        expect_narrowing_matches(sign | (centre + delta));
        if (centre >= delta) expect_narrowing_matches(sign | (centre - delta));
      }
    }
  }
}

}  // namespace
