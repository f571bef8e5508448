// Scaling primitives of unit scaling: multiply a tensor by a constant in one pass only.
#pragma once

#include <ATen/core/Tensor.h>
#include <unit_scaling/export.h>

namespace unit_scaling {

// Forward returns x * scale; backward passes the incoming gradient through unchanged.
// scale must be finite (ValueError).
//
// Example:
//   auto y = unit_scaling::scale_fwd(x, 0.5);  // y = x / 2, dy/dx treated as 1
UNIT_SCALING_API at::Tensor scale_fwd(const at::Tensor& x, double scale);

// Forward returns a copy of x; backward multiplies the incoming gradient by scale.
// Differentiable again (the backward is linear), so double backward works.
//
// Example:
//   const double s = std::sqrt(static_cast<double>(V) / static_cast<double>(N));  // not V / N
//   auto w = unit_scaling::scale_bwd(weight, s);  // w == weight, its gradient times s
UNIT_SCALING_API at::Tensor scale_bwd(const at::Tensor& x, double scale);

}  // namespace unit_scaling
