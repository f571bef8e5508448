// The CUDA backward's host-side plan (backward_plan.h states the rules).
#include "kernels/cuda/backward_plan.h"

#include <algorithm>

#include "kernels/summation_order.h"

namespace unit_scaling::kernels::cuda {
namespace {

// The bits needed to write `value` (0 for 0).
int bit_width(uint64_t value) {
  int bits = 0;
  while (value) {
    ++bits;
    value >>= 1;
  }
  return bits;
}

constexpr size_t align_up(size_t bytes) {
  return (bytes + kWorkspaceAlign - 1) / kWorkspaceAlign * kWorkspaceAlign;
}

}  // namespace

BackwardPlan plan_backward(const BackwardShape& shape, RadixSortTempBytes radix_sort_temp_bytes,
                           const PlanOverrides& overrides) {
  const int64_t count = shape.count;
  const int64_t num_rows = shape.num_rows;
  const int64_t dim = shape.dim;
  BackwardPlan plan;
  if (count == 0 || num_rows == 0 || dim == 0) {  // check_indices, then zeros
    plan.operations = (count > 0 ? 1 : 0) + (num_rows * dim > 0 ? 1 : 0);
    return plan;
  }
  const size_t parts_budget = overrides.parts_budget > 0 ? overrides.parts_budget : kPartsBudget;
  const int row_bits = bit_width(static_cast<uint64_t>(num_rows));  // keys in [0, V]
  plan.end_bit = row_bits;
  plan.wide_keys =
      overrides.wide_keys || num_rows >= (int64_t{1} << 32) - 1 || count >= int64_t{1} << 32;
  plan.tile_bits = kMinTileBits;  // tiles of 512 to 2048 positions, at most 32 of them
  while (plan.tile_bits < kMaxTileBits && (count >> plan.tile_bits) >= kMaxTiles) ++plan.tile_bits;
  const int64_t tile_entries = int64_t{1} << plan.tile_bits;
  plan.wide_composite = overrides.wide_keys || row_bits + plan.tile_bits > 32;
  plan.small =
      !overrides.radix_sort && row_bits + plan.tile_bits <= 64 && count <= kMaxTiles * tile_entries;
  const size_t key_bytes = plan.wide_keys ? 8 : 4;
  const auto acc_bytes = static_cast<size_t>(dtype_bytes(accumulation_dtype(shape.dtype)));
  const auto n = static_cast<size_t>(count);
  plan.windows = (count + kSumWindow - 1) / kSumWindow;
  const int64_t slot_count = plan.windows - 1;  // one per window boundary
  plan.slice_columns = std::min(dim, kMaxSliceColumns);
  if (slot_count > 0) {
    const auto fit =
        static_cast<int64_t>(parts_budget / (static_cast<size_t>(slot_count) * acc_bytes));
    if (fit < plan.slice_columns) {
      plan.slice_columns = std::max(kSliceAlign, fit / kSliceAlign * kSliceAlign);
    }
  }
  plan.slices = (dim + plan.slice_columns - 1) / plan.slice_columns;
  size_t at = 0;
  const auto take = [&at](size_t bytes) {
    const size_t start = at;
    at += align_up(bytes);
    return start;
  };
  plan.sorted_rows = take(n * key_bytes);
  plan.sorted_positions = take(n * key_bytes);
  if (plan.small) {
    plan.tiles = (count + tile_entries - 1) / tile_entries;
    if (plan.tiles > 1) plan.tile_keys = take(n * (plan.wide_composite ? 8 : 4));
  } else {
    plan.keys = take(n * key_bytes);
    plan.values = take(n * key_bytes);
    plan.sort_temp_bytes = radix_sort_temp_bytes(static_cast<int>(key_bytes), count, plan.end_bit);
    plan.sort_temp = take(plan.sort_temp_bytes);
  }
  if (slot_count > 0) {
    plan.slots = take(static_cast<size_t>(slot_count) *
                      static_cast<size_t>(std::min(plan.slice_columns, dim)) * acc_bytes);
  }
  plan.total = at;
  const BackwardVariant variant = overrides.variant;
  plan.rank_merge = uses_merge_path(variant) && plan.tiles > 1 && count > kRankMergeAbove;
  plan.side_zero = uses_side_zero(variant);
  plan.hot_tasks = uses_hot_rows(variant) ? slot_count : 0;  // one per window boundary
  const int64_t sort_operations =
      plan.small ? 1 + (plan.tiles > 1 ? 1 : 0) : 1 + radix_sort_operations(plan.end_bit);
  plan.operations =
      (plan.side_zero ? 1 : 0) + sort_operations + plan.slices * ((slot_count > 0 ? 1 : 0) + 1);
  plan.event_operations = plan.side_zero ? 4 : 0;
  return plan;
}

}  // namespace unit_scaling::kernels::cuda
