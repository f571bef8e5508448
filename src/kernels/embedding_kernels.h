// Framework-free CPU kernels of unit-scaled embedding, on raw pointers, sizes and strides
// (counted in elements). The LibTorch glue in src/ validates arguments before calling these;
// the kernels trust their inputs except where a function says it checks something. Each entry
// point lives in its own file: lookup.cpp, renorm.cpp, backward.cpp.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/parallel.h"

namespace unit_scaling::kernels {

// Floating storage formats of the table; 16-bit formats are accumulated in float32.
enum class DType { kFloat32, kFloat64, kFloat16, kBFloat16 };
// Index formats of the lookups.
enum class IndexType { kInt32, kInt64 };

size_t element_size(DType dtype);

// A 2-D view: element (r, c) lives at data + r * row_stride + c * col_stride.
struct ConstMatrix {
  const void* data;
  int64_t rows, cols, row_stride, col_stride;
};
struct MutableMatrix {
  void* data;
  int64_t rows, cols, row_stride, col_stride;
};

// Index of the first entry of indices[0, count) outside [0, num_rows), or -1 if all are valid.
int64_t find_first_invalid_index(IndexType type, const void* indices, int64_t count,
                                 int64_t num_rows);

// Reads indices[position] as int64 (for error messages).
int64_t index_at(IndexType type, const void* indices, int64_t position);

// The distinct values of indices[0, count), ascending. All must lie in [0, num_rows).
// O(count + num_rows) time via a presence mask.
std::vector<int64_t> distinct_rows(IndexType type, const void* indices, int64_t count,
                                   int64_t num_rows);

// For each listed row with p-norm > max_norm, multiply it in place by
// max_norm / (norm + 1e-7) (the torch.embedding_renorm_ rule). The norm is accumulated in
// float32 (float64 for double tables); p = +inf gives the max-abs norm. NaN norms are left
// alone. Rows are independent, so they run in parallel.
void renorm_rows(DType dtype, MutableMatrix weight, const std::vector<int64_t>& rows,
                 double max_norm, double norm_type, const Executor& executor);

// out[p, :] = weight[indices[p], :] for p < count; out is count x weight.cols, contiguous.
// A pure copy: bytes move unchanged, so only the element size matters.
void gather_rows(size_t element_bytes, ConstMatrix weight, IndexType type, const void* indices,
                 int64_t count, void* out, const Executor& executor);

// Unit-scaled weight gradient, written in full to grad_weight (num_rows x dim, contiguous):
//   grad_weight[r, :] = round(scale * sum_{p : indices[p] == r, r != padding_idx} grad_out[p, :])
// grad_out is count x dim, contiguous. padding_idx < 0 means none. Positions are grouped by row
// with a counting sort, each row is summed in ascending position order in float32 (float64 for
// double), scaled once and rounded once; so the result does not depend on the thread count.
void scaled_embedding_backward(DType dtype, IndexType type, const void* grad_out,
                               const void* indices, int64_t count, int64_t num_rows, int64_t dim,
                               int64_t padding_idx, double scale, void* grad_weight,
                               const Executor& executor);

}  // namespace unit_scaling::kernels
