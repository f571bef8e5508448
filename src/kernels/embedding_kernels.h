// Framework-free CPU kernels of unit-scaled embedding, on raw pointers, sizes and strides
// (counted in elements; kernel_types.h). The LibTorch glue in src/ validates arguments before
// calling these; the kernels trust their inputs except where a function says it checks something.
// Each entry point lives in its own file: index_checks.cpp, gather.cpp, renorm.cpp, backward.cpp.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/kernel_types.h"
#include "kernels/parallel.h"

namespace unit_scaling::kernels {

// Bytes of one page: the unit the kernels prefetch by when rows are scattered over memory.
constexpr int64_t kPageBytes = 4096;

// Index of the first index outside [0, num_rows), or -1 if all are valid.
int64_t find_first_invalid_index(IndexArray indices, int64_t num_rows);

// The distinct index values, ascending. All must lie in [0, num_rows).
// O(count + num_rows) time via a presence mask.
std::vector<int64_t> distinct_rows(IndexArray indices, int64_t num_rows);

// For each listed row with p-norm > max_norm, multiply it in place by
// max_norm / (norm + 1e-7) (the torch.embedding_renorm_ rule). The norm is accumulated in
// float32 (float64 for double tables); p = +inf gives the max-abs norm. NaN norms are left
// alone. Rows are independent, so they run in parallel.
void renorm_rows(DType dtype, MutableMatrix weight, const std::vector<int64_t>& rows,
                 double max_norm, double norm_type, const Executor& executor);

// out[p, :] = weight[indices[p], :] for p < count; out is count x weight.cols, contiguous.
// A pure copy: bytes move unchanged, so only the element size matters.
void gather_rows(size_t element_bytes, ConstMatrix weight, IndexArray indices, void* out,
                 const Executor& executor);

// Lookup positions grouped by row: positions[start[r] .. start[r + 1]) are the p with
// indices[p] == r, ascending.
struct RowGroups {
  std::vector<int64_t> start;
  std::vector<int64_t> positions;

  int64_t uses(int64_t row) const {
    return start[static_cast<size_t>(row) + 1] - start[static_cast<size_t>(row)];
  }
};

// Counting sort of the positions by row in O(N + V), skipping positions whose index is
// padding_row (< 0: none). The same pass validates the indices: returns the first position
// whose index lies outside [0, num_rows) (groups is then incomplete), or -1 if all are valid.
int64_t group_positions_by_row(IndexArray indices, int64_t num_rows, int64_t padding_row,
                               RowGroups& groups);

// The unit-scaled weight gradient from grouped positions, written in full to grad_weight
// (num_rows x dim, contiguous):
//   grad_weight[r, :] = round(scale * sum_{p in group r} grad_out[p, :])
// grad_out is N x dim, contiguous. Each row is summed in float32 (float64 for double) in the
// order of summation_order.h, scaled once and rounded once; so the result does not depend on
// the thread count, and equals the CUDA kernel's bit for bit.
void write_scaled_gradient(DType dtype, const RowGroups& groups, const void* grad_out, int64_t dim,
                           double scale, void* grad_weight, const Executor& executor);

}  // namespace unit_scaling::kernels
