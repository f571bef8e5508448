// max_norm: in-place renormalisation of the referenced rows.
#include <cmath>

#include "kernels/element.h"
#include "kernels/embedding_kernels.h"

namespace unit_scaling::kernels {
namespace {

using detail::Element;

// p-norm of one strided row, accumulated in Acc. NaN propagates (as in at::norm).
template <typename T>
typename Element<T>::Acc row_norm(const T* row, int64_t cols, int64_t col_stride, double p) {
  using Acc = typename Element<T>::Acc;
  Acc total = 0;
  if (std::isinf(p)) {
    for (int64_t c = 0; c < cols; ++c) {
      const Acc a = std::abs(Element<T>::load(row[c * col_stride]));
      if (!(a <= total) && !std::isnan(total)) total = a;  // once NaN, the norm stays NaN
    }
    return total;
  }
  const auto acc_p = static_cast<Acc>(p);
  for (int64_t c = 0; c < cols; ++c) {
    const Acc a = std::abs(Element<T>::load(row[c * col_stride]));
    total += p == 1.0 ? a : p == 2.0 ? a * a : std::pow(a, acc_p);
  }
  if (p == 1.0) return total;
  if (p == 2.0) return std::sqrt(total);
  return std::pow(total, static_cast<Acc>(1.0 / p));
}

}  // namespace

// Memory traffic: each distinct referenced row is read once and, if too long, written once.
void renorm_rows(DType dtype, MutableMatrix weight, const std::vector<int64_t>& rows,
                 double max_norm, double norm_type, const Executor& executor) {
  if (rows.empty() || weight.cols == 0) return;  // zero-width rows have norm 0 (and may be null)
  detail::with_dtype(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Acc = typename Element<T>::Acc;
    auto* base = static_cast<T*>(weight.data);
    const auto count = static_cast<int64_t>(rows.size());
    executor.parallel_for(
        0, count, detail::grain_for(weight.cols), [&](int64_t begin, int64_t end) {
          for (int64_t i = begin; i < end; ++i) {
            T* row = base + rows[static_cast<size_t>(i)] * weight.row_stride;
            const double norm = row_norm(row, weight.cols, weight.col_stride, norm_type);
            if (!(norm > max_norm)) continue;
            const auto factor = static_cast<Acc>(max_norm / (norm + 1e-7));
            for (int64_t c = 0; c < weight.cols; ++c) {
              T& x = row[c * weight.col_stride];
              x = Element<T>::store(Element<T>::load(x) * factor);
            }
          }
        });
  });
}

}  // namespace unit_scaling::kernels
