// The public C++ entry points: the same dispatcher operators Python calls.
#include <unit_scaling/functional.h>

#include "embedding_checks.h"
#include "operators.h"

namespace unit_scaling::functional {

at::Tensor detail::embedding_call(const at::Tensor& input, const at::Tensor& weight,
                                  std::optional<int64_t> padding_idx,
                                  std::optional<double> max_norm, double norm_type,
                                  bool scale_grad_by_freq, bool sparse,
                                  const GradScaleOptions& grad_scale) {
  std::optional<c10::SymInt> padding;
  if (padding_idx) padding = c10::SymInt(*padding_idx);
  return unit_scaling::detail::embedding_op().call(
      input, weight, padding, max_norm, norm_type, scale_grad_by_freq, sparse,
      grad_scale.token_multiplier(), grad_scale.num_tokens());
}

at::Tensor embedding(const at::Tensor& input, const at::Tensor& weight,
                     const EmbeddingFuncOptions& options, const GradScaleOptions& grad_scale) {
  return detail::embedding_call(input, weight, options.padding_idx(), options.max_norm(),
                                options.norm_type(), options.scale_grad_by_freq(), options.sparse(),
                                grad_scale);
}

void check_options(int64_t num_embeddings, const EmbeddingFuncOptions& options,
                   const GradScaleOptions& grad_scale) {
  unit_scaling::detail::check_settings(options, num_embeddings);
  unit_scaling::detail::check_token_count(grad_scale.token_multiplier(), grad_scale.num_tokens());
}

}  // namespace unit_scaling::functional
