// max_norm: in-place renormalisation of the referenced rows.
#include "kernels/element.h"
#include "kernels/embedding_kernels.h"
#include "kernels/p_norm.h"

namespace unit_scaling::kernels {
namespace {

using detail::Element;

// p-norm of one strided row, accumulated in Acc in ascending column order (p_norm.h). The two
// loops keep the test of p out of the p = inf one.
template <typename T>
typename Element<T>::Acc row_norm(const T* row, int64_t cols, int64_t col_stride, double p) {
  using Acc = typename Element<T>::Acc;
  Acc total = 0;
  if (std::isinf(p)) {
    for (int64_t c = 0; c < cols; ++c) {
      const Acc a = p_norm::absolute(Element<T>::load(row[c * col_stride]));
      total = p_norm::add(total, a, /*is_inf=*/true);
    }
    return total;
  }
  const auto acc_p = static_cast<Acc>(p);
  for (int64_t c = 0; c < cols; ++c) {
    const Acc a = p_norm::absolute(Element<T>::load(row[c * col_stride]));
    total = p_norm::add(total, p_norm::term(a, /*is_inf=*/false, p, acc_p), /*is_inf=*/false);
  }
  return p_norm::root(total, /*is_inf=*/false, p);
}

}  // namespace

// Memory traffic: the N indices read once (distinct_rows), then each distinct referenced row
// read once and, if too long, written once.
void renorm_rows(const RenormParams& params, const Executor& executor) {
  const MutableMatrix weight = params.weight;
  if (params.indices.count == 0 || weight.cols == 0) return;  // zero-width rows: norm 0
  const std::vector<int64_t> rows = distinct_rows(params.indices, weight.rows);
  const double max_norm = params.max_norm;
  const double norm_type = params.norm_type;
  detail::with_dtype(params.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Acc = typename Element<T>::Acc;
    auto* base = static_cast<T*>(weight.data);
    const int64_t cols = weight.cols;
    const int64_t row_stride = weight.row_stride;
    const int64_t col_stride = weight.col_stride;
    const auto count = static_cast<int64_t>(rows.size());
    executor.parallel_for(0, count, detail::grain_for(cols), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        T* row = base + rows[static_cast<size_t>(i)] * row_stride;
        const double norm = row_norm(row, cols, col_stride, norm_type);
        if (!p_norm::exceeds(norm, max_norm)) continue;
        const auto factor = p_norm::rescale_factor<Acc>(norm, max_norm);
        for (int64_t c = 0; c < cols; ++c) {
          T& x = row[c * col_stride];
          x = Element<T>::store(Element<T>::load(x) * factor);
        }
      }
    });
  });
}

}  // namespace unit_scaling::kernels
