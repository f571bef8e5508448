// The public C++ entry points: the same dispatcher operators Python calls.
#include <unit_scaling/functional.h>

#include "call_options.h"
#include "embedding_checks.h"
#include "operators.h"
#include "unit_scale.h"

namespace unit_scaling::functional {

at::Tensor detail::embedding_call(const at::Tensor& input, const at::Tensor& weight,
                                  std::optional<int64_t> padding_idx,
                                  std::optional<double> max_norm, double norm_type,
                                  bool scale_grad_by_freq, bool sparse,
                                  const GradScaleOptions& grad_scale) {
  return embedding(input, weight,
                   EmbeddingFuncOptions()
                       .padding_idx(padding_idx)
                       .max_norm(max_norm)
                       .norm_type(norm_type)
                       .scale_grad_by_freq(scale_grad_by_freq)
                       .sparse(sparse),
                   grad_scale);
}

at::Tensor embedding(const at::Tensor& input, const at::Tensor& weight,
                     const EmbeddingFuncOptions& options, const GradScaleOptions& grad_scale) {
  namespace d = unit_scaling::detail;
  return d::call_embedding(input, weight, d::call_options(options, grad_scale));
}

void check_options(int64_t num_embeddings, const EmbeddingFuncOptions& options,
                   const GradScaleOptions& grad_scale) {
  namespace d = unit_scaling::detail;
  d::check_table_options(d::call_options(options, grad_scale), num_embeddings);
}

double unit_scale(int64_t num_embeddings, int64_t num_lookups, const GradScaleOptions& grad_scale) {
  namespace d = unit_scaling::detail;
  const d::CallOptions call = d::call_options(EmbeddingFuncOptions(), grad_scale);
  d::check_table_options(call, num_embeddings);
  return d::unit_scale(num_embeddings, num_lookups, call);
}

int64_t padding_row(int64_t num_embeddings, const EmbeddingFuncOptions& options) {
  namespace d = unit_scaling::detail;
  const d::CallOptions call = d::call_options(options, GradScaleOptions());
  d::check_table_options(call, num_embeddings);
  return d::padding_row_or_none(call.padding_idx, num_embeddings);
}

}  // namespace unit_scaling::functional
