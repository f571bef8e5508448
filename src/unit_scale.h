// The unit scale: the one place that turns a lookup count into the gradient's factor.
#pragma once

#include <c10/core/SymFloat.h>
#include <c10/core/SymInt.h>

#include <cstdint>

#include "call_options.h"

namespace unit_scaling::detail {

// s = sqrt(num_rows / N_eff): the factor that brings the summed gradient of unit-normal rows
// spread over num_rows rows back to unit scale, with N_eff = options.num_tokens if set, else
// count * options.token_multiplier (docs/SCALING.md). A count of 0 has no lookups, so nothing
// is scaled; the formula then counts 1, which keeps s finite. Symbolic sizes stay symbolic
// (torch.compile does not guard on the batch shape or on num_tokens).
c10::SymFloat unit_scale(const c10::SymInt& num_rows, const c10::SymInt& count,
                         const CallOptions& options);

// The same for concrete sizes (and a concrete num_tokens).
double unit_scale(int64_t num_rows, int64_t count, const CallOptions& options);

}  // namespace unit_scaling::detail
