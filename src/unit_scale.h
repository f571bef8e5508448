// The unit scale: the one place that turns a lookup count into the gradient's factor.
#pragma once

#include <cstdint>
#include <optional>

namespace unit_scaling::detail {

// s = sqrt(num_rows / N_eff): the factor that brings the summed gradient of unit-normal rows
// spread over num_rows rows back to unit scale, with N_eff = num_tokens if set, else
// count * token_multiplier (docs/SCALING.md). count == 0 has no gradient at all: returns 0.
double unit_scale(int64_t num_rows, int64_t count, double token_multiplier = 1.0,
                  std::optional<int64_t> num_tokens = std::nullopt);

}  // namespace unit_scaling::detail
