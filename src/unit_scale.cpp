#include "unit_scale.h"

namespace unit_scaling::detail {

c10::SymFloat unit_scale(const c10::SymInt& num_rows, const c10::SymInt& count,
                         const CallOptions& options) {
  const c10::SymFloat tokens = options.num_tokens
                                   ? c10::SymFloat(*options.num_tokens)
                                   : c10::SymFloat(count.max(1)) * options.token_multiplier;
  return (c10::SymFloat(num_rows) / tokens).sqrt();
}

double unit_scale(int64_t num_rows, int64_t count, const CallOptions& options) {
  return unit_scale(c10::SymInt(num_rows), c10::SymInt(count), options).expect_float();
}

}  // namespace unit_scaling::detail
