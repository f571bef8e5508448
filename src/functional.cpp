// The public C++ entry points: the same dispatcher operators Python calls.
#include <unit_scaling/functional.h>

#include "operators.h"

namespace unit_scaling::functional {

at::Tensor embedding(const at::Tensor& input, const at::Tensor& weight,
                     const EmbeddingFuncOptions& options, const GradScaleOptions& grad_scale) {
  std::optional<c10::SymInt> padding;
  if (options.padding_idx()) padding = c10::SymInt(*options.padding_idx());
  return detail::embedding_op().call(
      input, weight, padding, options.max_norm(), options.norm_type(), options.scale_grad_by_freq(),
      options.sparse(), grad_scale.token_multiplier(), grad_scale.num_tokens());
}

}  // namespace unit_scaling::functional
