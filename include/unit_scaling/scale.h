// Scaling primitives of unit scaling: multiply a tensor by a constant in one pass only.
#pragma once

#include <ATen/core/Tensor.h>

namespace unit_scaling {

// Forward returns x * scale; backward passes the incoming gradient through unchanged.
at::Tensor scale_fwd(const at::Tensor& x, double scale);

// Forward returns a copy of x; backward multiplies the incoming gradient by scale.
// Differentiable again (the backward is linear), so double backward works.
at::Tensor scale_bwd(const at::Tensor& x, double scale);

}  // namespace unit_scaling
