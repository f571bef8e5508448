// Framework-free CPU kernels of unit-scaled embedding, on raw pointers, sizes and strides
// (counted in elements; kernel_types.h). Each operator's kernel takes its parameter struct
// (kernel_params.h, shared with the CUDA kernels) and the Executor. The LibTorch glue in src/
// validates arguments before calling these; the kernels trust their inputs except where a
// function says it checks something. Each entry point lives in its own file: index_checks.cpp,
// gather.cpp, renorm.cpp, backward.cpp.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/kernel_params.h"
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

// max_norm (RenormParams): each distinct row of params.indices (all in [0, V)) with
// p-norm > max_norm is multiplied in place by max_norm / (norm + 1e-7) (the
// torch.embedding_renorm_ rule, math in p_norm.h). The norm is accumulated in float32 (float64
// for double tables); p = +inf gives the max-abs norm. NaN norms are left alone. Rows are
// independent, so they run in parallel.
void renorm_rows(const RenormParams& params, const Executor& executor);

// The lookup (GatherParams): out[p, :] = weight[indices[p], :], every index in [0, V). A pure
// copy: bytes move unchanged, so only the element size matters.
void gather_rows(const GatherParams& params, const Executor& executor);

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
// padding_row (< 0: none). Every index must lie in [0, num_rows).
void group_positions_by_row(IndexArray indices, int64_t num_rows, int64_t padding_row,
                            RowGroups& groups);

// The unit-scaled weight gradient (BackwardParams), written in full to grad_weight:
//   grad_weight[r, :] = round(scale * sum_{p : indices[p] == r, r != padding_row} grad_out[p, :])
// Every index must lie in [0, num_rows) (the glue checks them first). The positions are
// grouped by row (group_positions_by_row), then each row is summed in float32 (float64 for
// double) in the order of summation_order.h, scaled once and rounded once; so the result does
// not depend on the thread count, and equals the CUDA kernel's bit for bit.
void write_scaled_gradient(const BackwardParams& params, const Executor& executor);

}  // namespace unit_scaling::kernels
