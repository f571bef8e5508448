// Bit-exact conversions between float32 and the 16-bit storage formats (IEEE binary16 and
// bfloat16), with round-to-nearest-even. Framework-free: the kernels use these on raw uint16_t
// storage, which has the same layout as at::Half / at::BFloat16. Host and device code (CPU and
// CUDA kernels) share them, so both round every value to the same bits.
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/host_device.h"

namespace unit_scaling::kernels {

UNIT_SCALING_HOST_DEVICE inline uint32_t float_bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

UNIT_SCALING_HOST_DEVICE inline float float_from_bits(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, sizeof value);
  return value;
}

// bfloat16 is the upper half of a float32: widening is a shift.
UNIT_SCALING_HOST_DEVICE inline float bfloat16_to_float(uint16_t bits) {
  return float_from_bits(uint32_t{bits} << 16);
}

// Round to nearest even on the 16 dropped bits; every NaN becomes the canonical quiet NaN.
UNIT_SCALING_HOST_DEVICE inline uint16_t float_to_bfloat16(float value) {
  const uint32_t bits = float_bits(value);
  if ((bits & 0x7FFFFFFFu) > 0x7F800000u) return 0x7FC0;
  const uint32_t round_bias = 0x7FFFu + ((bits >> 16) & 1u);
  return static_cast<uint16_t>((bits + round_bias) >> 16);
}

// binary16: 1 sign, 5 exponent (bias 15), 10 mantissa bits; subnormals scale by 2^-24.
UNIT_SCALING_HOST_DEVICE inline float half_to_float(uint16_t bits) {
  const uint32_t sign = uint32_t{bits & 0x8000u} << 16;
  const uint32_t exponent = (bits >> 10) & 0x1Fu;
  const uint32_t mantissa = bits & 0x3FFu;
  if (exponent == 0x1F) return float_from_bits(sign | 0x7F800000u | (mantissa << 13));
  if (exponent == 0) {
    const float magnitude = static_cast<float>(mantissa) * 0x1p-24f;  // exact: mantissa < 2^10
    return sign ? -magnitude : magnitude;
  }
  return float_from_bits(sign | ((exponent + 112u) << 23) | (mantissa << 13));
}

UNIT_SCALING_HOST_DEVICE inline uint16_t float_to_half(float value) {
  const uint32_t bits = float_bits(value);
  const auto sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t magnitude = bits & 0x7FFFFFFFu;
  if (magnitude > 0x7F800000u) return sign | 0x7E00u;  // NaN stays NaN (quiet)
  const int32_t exponent = static_cast<int32_t>(magnitude >> 23) - 127;
  if (exponent > 15) return sign | 0x7C00u;  // beyond the largest binade: infinity
  // Keep 11 significant bits (10 for normals plus the implicit one); subnormal results keep
  // fewer, one less per binade below 2^-14. Anything under 2^-25 rounds to zero.
  const bool normal = exponent >= -14;
  const int32_t dropped = normal ? 13 : 13 + (-14 - exponent);
  if (dropped > 24) return sign;
  const uint32_t significand = (magnitude & 0x7FFFFFu) | 0x800000u;
  uint32_t kept = significand >> dropped;
  const uint32_t remainder = significand & ((1u << dropped) - 1u);
  const uint32_t halfway = 1u << (dropped - 1);
  if (remainder > halfway || (remainder == halfway && (kept & 1u))) ++kept;
  // For normals `kept` holds the implicit bit at 2^10; adding it onto (exponent field - 1)
  // lets a rounding carry step into the next binade (and up to infinity) for free.
  const uint32_t result = normal ? (static_cast<uint32_t>(exponent + 14) << 10) + kept : kept;
  return static_cast<uint16_t>(sign | result);
}

}  // namespace unit_scaling::kernels
