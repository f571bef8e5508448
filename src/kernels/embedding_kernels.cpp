#include "kernels/embedding_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/float_formats.h"

namespace unit_scaling::kernels {
namespace {

// Storage types of the 16-bit formats: same bytes as at::Half / at::BFloat16.
struct Float16 {
  uint16_t bits;
};
struct BFloat16 {
  uint16_t bits;
};

// Acc is the accumulation type; load widens a stored element, store rounds once.
template <typename T>
struct Element;
template <>
struct Element<float> {
  using Acc = float;
  static Acc load(float v) { return v; }
  static float store(Acc v) { return v; }
};
template <>
struct Element<double> {
  using Acc = double;
  static Acc load(double v) { return v; }
  static double store(Acc v) { return v; }
};
template <>
struct Element<Float16> {
  using Acc = float;
  static Acc load(Float16 v) { return half_to_float(v.bits); }
  static Float16 store(Acc v) { return {float_to_half(v)}; }
};
template <>
struct Element<BFloat16> {
  using Acc = float;
  static Acc load(BFloat16 v) { return bfloat16_to_float(v.bits); }
  static BFloat16 store(Acc v) { return {float_to_bfloat16(v)}; }
};

template <typename T>
struct Tag {
  using type = T;
};

template <typename F>
decltype(auto) with_dtype(DType dtype, F&& f) {
  switch (dtype) {
    case DType::kFloat32:
      return f(Tag<float>{});
    case DType::kFloat64:
      return f(Tag<double>{});
    case DType::kFloat16:
      return f(Tag<Float16>{});
    case DType::kBFloat16:
      break;
  }
  return f(Tag<BFloat16>{});
}

template <typename F>
decltype(auto) with_index_type(IndexType type, F&& f) {
  if (type == IndexType::kInt32) return f(Tag<int32_t>{});
  return f(Tag<int64_t>{});
}

// Roughly how many elements one parallel task should touch before splitting pays off.
constexpr int64_t kElementsPerTask = 32768;

int64_t grain_for(int64_t elements_per_item) {
  return std::max<int64_t>(1, kElementsPerTask / std::max<int64_t>(1, elements_per_item));
}

// p-norm of one strided row, accumulated in Acc. NaN propagates (as in at::norm).
template <typename T>
typename Element<T>::Acc row_norm(const T* row, int64_t cols, int64_t col_stride, double p) {
  using Acc = typename Element<T>::Acc;
  Acc total = 0;
  if (std::isinf(p)) {
    for (int64_t c = 0; c < cols; ++c) {
      const Acc a = std::abs(Element<T>::load(row[c * col_stride]));
      if (!(a <= total)) total = a;
    }
    return total;
  }
  const Acc acc_p = static_cast<Acc>(p);
  for (int64_t c = 0; c < cols; ++c) {
    const Acc a = std::abs(Element<T>::load(row[c * col_stride]));
    total += p == 1.0 ? a : p == 2.0 ? a * a : std::pow(a, acc_p);
  }
  if (p == 1.0) return total;
  if (p == 2.0) return std::sqrt(total);
  return std::pow(total, static_cast<Acc>(1.0 / p));
}

}  // namespace

size_t element_size(DType dtype) {
  return with_dtype(dtype, [](auto tag) { return sizeof(typename decltype(tag)::type); });
}

int64_t find_first_invalid_index(IndexType type, const void* indices, int64_t count,
                                 int64_t num_rows) {
  return with_index_type(type, [&](auto tag) -> int64_t {
    using Index = typename decltype(tag)::type;
    const auto* idx = static_cast<const Index*>(indices);
    for (int64_t p = 0; p < count; ++p) {
      const int64_t value = idx[p];
      if (value < 0 || value >= num_rows) return p;
    }
    return -1;
  });
}

int64_t index_at(IndexType type, const void* indices, int64_t position) {
  return with_index_type(type, [&](auto tag) -> int64_t {
    using Index = typename decltype(tag)::type;
    return static_cast<const Index*>(indices)[position];
  });
}

std::vector<int64_t> distinct_rows(IndexType type, const void* indices, int64_t count,
                                   int64_t num_rows) {
  std::vector<uint8_t> present(static_cast<size_t>(num_rows), 0);
  int64_t distinct = 0;
  with_index_type(type, [&](auto tag) {
    using Index = typename decltype(tag)::type;
    const auto* idx = static_cast<const Index*>(indices);
    for (int64_t p = 0; p < count; ++p) {
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

void renorm_rows(DType dtype, MutableMatrix weight, const std::vector<int64_t>& rows,
                 double max_norm, double norm_type, const ParallelFor& parallel_for) {
  with_dtype(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Acc = typename Element<T>::Acc;
    auto* base = static_cast<T*>(weight.data);
    const int64_t count = static_cast<int64_t>(rows.size());
    parallel_for(0, count, grain_for(weight.cols), [&](int64_t begin, int64_t end) {
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

void gather_rows(size_t element_bytes, ConstMatrix weight, IndexType type, const void* indices,
                 int64_t count, void* out, const ParallelFor& parallel_for) {
  const int64_t dim = weight.cols;
  if (count == 0 || dim == 0) return;
  const auto* src = static_cast<const char*>(weight.data);
  auto* dst = static_cast<char*>(out);
  const auto row_bytes = static_cast<size_t>(dim) * element_bytes;
  const auto row_stride_bytes = weight.row_stride * static_cast<int64_t>(element_bytes);
  const auto col_stride_bytes = weight.col_stride * static_cast<int64_t>(element_bytes);
  with_index_type(type, [&](auto tag) {
    using Index = typename decltype(tag)::type;
    const auto* idx = static_cast<const Index*>(indices);
    parallel_for(0, count, grain_for(dim), [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        const char* row = src + static_cast<int64_t>(idx[p]) * row_stride_bytes;
        char* target = dst + p * static_cast<int64_t>(row_bytes);
        if (weight.col_stride == 1) {
          std::memcpy(target, row, row_bytes);
          continue;
        }
        for (int64_t c = 0; c < dim; ++c) {
          std::memcpy(target + c * static_cast<int64_t>(element_bytes), row + c * col_stride_bytes,
                      element_bytes);
        }
      }
    });
  });
}

void scaled_embedding_backward(DType dtype, IndexType type, const void* grad_out,
                               const void* indices, int64_t count, int64_t num_rows, int64_t dim,
                               int64_t padding_idx, double scale, void* grad_weight,
                               const ParallelFor& parallel_for) {
  // Counting sort of positions by row: row_start[r] .. row_start[r + 1] lists, in ascending
  // order, the positions p with indices[p] == r (padding positions are dropped).
  std::vector<int64_t> row_start(static_cast<size_t>(num_rows) + 1, 0);
  std::vector<int64_t> positions;
  with_index_type(type, [&](auto tag) {
    using Index = typename decltype(tag)::type;
    const auto* idx = static_cast<const Index*>(indices);
    for (int64_t p = 0; p < count; ++p) {
      const int64_t r = idx[p];
      if (r != padding_idx) ++row_start[static_cast<size_t>(r) + 1];
    }
    for (int64_t r = 0; r < num_rows; ++r) {
      row_start[static_cast<size_t>(r) + 1] += row_start[static_cast<size_t>(r)];
    }
    positions.resize(static_cast<size_t>(row_start.back()));
    std::vector<int64_t> cursor(row_start.begin(), row_start.end() - 1);
    for (int64_t p = 0; p < count; ++p) {
      const int64_t r = idx[p];
      if (r != padding_idx) positions[static_cast<size_t>(cursor[static_cast<size_t>(r)]++)] = p;
    }
  });

  // Each row: sum its gradient rows in Acc, scale once, round once, write once.
  with_dtype(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Acc = typename Element<T>::Acc;
    const auto* grad = static_cast<const T*>(grad_out);
    auto* result = static_cast<T*>(grad_weight);
    const auto acc_scale = static_cast<Acc>(scale);
    parallel_for(0, num_rows, grain_for(dim), [&](int64_t begin, int64_t end) {
      std::vector<Acc> sum(static_cast<size_t>(dim));
      for (int64_t r = begin; r < end; ++r) {
        std::fill(sum.begin(), sum.end(), Acc{0});
        for (int64_t i = row_start[static_cast<size_t>(r)];
             i < row_start[static_cast<size_t>(r) + 1]; ++i) {
          const T* g = grad + positions[static_cast<size_t>(i)] * dim;
          for (int64_t c = 0; c < dim; ++c) sum[static_cast<size_t>(c)] += Element<T>::load(g[c]);
        }
        T* out = result + r * dim;
        for (int64_t c = 0; c < dim; ++c) {
          out[c] = Element<T>::store(sum[static_cast<size_t>(c)] * acc_scale);
        }
      }
    });
  });
}

}  // namespace unit_scaling::kernels
