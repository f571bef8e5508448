#include "unit_scale.h"

#include <cmath>

namespace unit_scaling::detail {

double unit_scale(int64_t num_rows, int64_t count, double token_multiplier,
                  std::optional<int64_t> num_tokens) {
  if (count == 0) return 0.0;
  const double tokens =
      num_tokens ? static_cast<double>(*num_tokens) : static_cast<double>(count) * token_multiplier;
  return std::sqrt(static_cast<double>(num_rows) / tokens);
}

}  // namespace unit_scaling::detail
