// The forward row gather.
#include <cstring>

#include "kernels/element.h"
#include "kernels/embedding_kernels.h"

namespace unit_scaling::kernels {

using detail::grain_for;
using detail::with_index_type;

// Memory traffic: reads N rows of D elements (from anywhere in the table) and writes N * D
// contiguous elements once. Contiguous rows go through memcpy (wide loads and stores); strided
// rows are copied element by element with the element's own width.
// Rows are scattered over the table: touching each 4 KiB page of the row a few lookups ahead
// starts its page walk and first cache line early, so the copy of the current row overlaps
// that latency (the hardware prefetcher then streams the rest of each page).
constexpr int64_t kPrefetchDistance = 8;

// Short rows (embedding widths up to 1 KiB) move as inlined 32-byte blocks; a libc memcpy call
// costs about as much as the copy itself there. Longer rows go to memcpy.
inline void copy_row(char* __restrict dst, const char* __restrict src, int64_t bytes) {
  if (bytes <= 1024 && bytes % 32 == 0) {
    for (int64_t offset = 0; offset < bytes; offset += 32)
      std::memcpy(dst + offset, src + offset, 32);
    return;
  }
  std::memcpy(dst, src, static_cast<size_t>(bytes));
}

void gather_rows(const GatherParams& params, const Executor& executor) {
  const ConstMatrix weight = params.weight;
  const size_t element_bytes = params.element_bytes;
  const int64_t dim = weight.cols;
  const int64_t count = params.indices.count;
  if (count == 0 || dim == 0) return;
  const auto* src = static_cast<const char*>(weight.data);
  auto* dst = static_cast<char*>(params.out);
  const auto bytes = static_cast<int64_t>(element_bytes);
  const int64_t row_bytes = dim * bytes;
  const int64_t row_stride_bytes = weight.row_stride * bytes;
  const int64_t col_stride_bytes = weight.col_stride * bytes;
  with_index_type(params.indices.type, [&](auto tag) {
    using Index = typename decltype(tag)::type;
    const auto* idx = static_cast<const Index*>(params.indices.data);
    executor.parallel_for(0, count, grain_for(dim), [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const char* row = src + static_cast<int64_t>(idx[p]) * row_stride_bytes;
        char* target = dst + p * row_bytes;
        if (p + kPrefetchDistance < end && weight.col_stride == 1) {
          const char* ahead =
              src + static_cast<int64_t>(idx[p + kPrefetchDistance]) * row_stride_bytes;
          for (int64_t offset = 0; offset < row_bytes; offset += kPageBytes) {
            __builtin_prefetch(ahead + offset);
          }
        }
        if (weight.col_stride == 1) {
          copy_row(target, row, row_bytes);
          continue;
        }
        for (int64_t c = 0; c < dim; ++c) {
          std::memcpy(target + c * bytes, row + c * col_stride_bytes, element_bytes);
        }
      }
    });
  });
}

}  // namespace unit_scaling::kernels
