// Index validation and the distinct rows of an index set.
#include "kernels/element.h"
#include "kernels/embedding_kernels.h"

namespace unit_scaling::kernels {

using detail::with_index_type;

// Blocks of indices are tested branch-free (one unsigned compare catches negatives too), so
// the common all-valid case vectorises; only a block with a bad index is searched in order.
int64_t find_first_invalid_index(IndexArray indices, int64_t num_rows) {
  const int64_t count = indices.count;
  return with_index_type(indices.type, [&](auto tag) -> int64_t {
    using Index = typename decltype(tag)::type;
    const auto* idx = static_cast<const Index*>(indices.data);
    const auto limit = static_cast<uint64_t>(num_rows);
    constexpr int64_t kBlock = 1024;
    for (int64_t begin = 0; begin < count; begin += kBlock) {
      const int64_t end = begin + kBlock < count ? begin + kBlock : count;
      bool any_bad = false;
      for (int64_t p = begin; p < end; ++p) {
        any_bad |= static_cast<uint64_t>(static_cast<int64_t>(idx[p])) >= limit;
      }
      if (!any_bad) continue;
      for (int64_t p = begin; p < end; ++p) {
        if (static_cast<uint64_t>(static_cast<int64_t>(idx[p])) >= limit) return p;
      }
    }
    return -1;
  });
}

std::vector<int64_t> distinct_rows(IndexArray indices, int64_t num_rows) {
  std::vector<uint8_t> present(static_cast<size_t>(num_rows), 0);
  int64_t distinct = 0;
  with_index_type(indices.type, [&](auto tag) {
    using Index = typename decltype(tag)::type;
    const auto* idx = static_cast<const Index*>(indices.data);
    for (int64_t p = 0; p < indices.count; ++p) {
      uint8_t& seen = present[static_cast<size_t>(idx[p])];
      distinct += !seen;
      seen = 1;
    }
  });
  std::vector<int64_t> rows;
  rows.reserve(static_cast<size_t>(distinct));
  for (int64_t r = 0; r < num_rows; ++r) {
    if (present[static_cast<size_t>(r)]) rows.push_back(r);
  }
  return rows;
}

}  // namespace unit_scaling::kernels
