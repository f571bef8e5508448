// The weight dtypes the library supports, as one list: torch's dtype -> the kernels' DType
// (kernels/kernel_types.h, which also holds the accumulation rule).
#pragma once

#include <c10/core/ScalarType.h>

#include <optional>

#include "kernels/kernel_types.h"

namespace unit_scaling::detail {

// The kernels' format of a supported weight dtype (float32, float64, float16, bfloat16), or
// nullopt for any other.
inline std::optional<kernels::DType> kernel_dtype(at::ScalarType type) {
  switch (type) {
    case at::kFloat:
      return kernels::DType::kFloat32;
    case at::kDouble:
      return kernels::DType::kFloat64;
    case at::kHalf:
      return kernels::DType::kFloat16;
    case at::kBFloat16:
      return kernels::DType::kBFloat16;
    default:
      return std::nullopt;
  }
}

// torch's dtype of a kernel format.
inline at::ScalarType scalar_type(kernels::DType type) {
  switch (type) {
    case kernels::DType::kFloat64:
      return at::kDouble;
    case kernels::DType::kFloat16:
      return at::kHalf;
    case kernels::DType::kBFloat16:
      return at::kBFloat16;
    case kernels::DType::kFloat32:
      break;
  }
  return at::kFloat;
}

// The dtype the gradient of a supported `type` accumulates in (accumulation_dtype).
inline at::ScalarType accumulation_type(at::ScalarType type) {
  return scalar_type(kernels::accumulation_dtype(*kernel_dtype(type)));
}

}  // namespace unit_scaling::detail
