#include "unit_scale.h"

namespace unit_scaling::detail {

c10::SymFloat unit_scale(const c10::SymInt& num_rows, const c10::SymInt& count,
                         double token_multiplier, const std::optional<c10::SymInt>& num_tokens) {
  const c10::SymFloat tokens =
      num_tokens ? c10::SymFloat(*num_tokens) : c10::SymFloat(count.max(1)) * token_multiplier;
  return (c10::SymFloat(num_rows) / tokens).sqrt();
}

double unit_scale(int64_t num_rows, int64_t count, double token_multiplier,
                  std::optional<int64_t> num_tokens) {
  std::optional<c10::SymInt> tokens;
  if (num_tokens) tokens = c10::SymInt(*num_tokens);
  return unit_scale(c10::SymInt(num_rows), c10::SymInt(count), token_multiplier, tokens)
      .expect_float();
}

}  // namespace unit_scaling::detail
