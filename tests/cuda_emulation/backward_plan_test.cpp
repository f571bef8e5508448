// The CUDA backward's host-side plan (src/kernels/cuda/backward_plan.h), plain C++: the tile
// size, the small/radix threshold, the key widths, the column slices under the 32 MiB budget, the
// workspace layout, the stream-operation counts and the variants (backward_variant.h: their names
// and what each changes), pinned without nvcc, a GPU or the emulation.
// (cuda_kernels_emulation_test runs the kernels on these plans and checks their operation counts.)
#include "kernels/cuda/backward_plan.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

namespace unit_scaling::kernels::cuda {
namespace {

constexpr int64_t kGpt2Vocab = 50257;
constexpr int64_t kGpt2Dim = 768;
constexpr size_t kMiB = size_t{1} << 20;

// A stand-in for CUB's temporary-storage query: records its last call, asks for 1000 bytes.
struct RadixCall {
  int key_bytes = 0;
  int64_t count = 0;
  int end_bit = 0;
  int calls = 0;
};
RadixCall radix_call;
constexpr size_t kFakeTempBytes = 1000;

size_t fake_radix_temp_bytes(int key_bytes, int64_t count, int end_bit) {
  radix_call = {key_bytes, count, end_bit, radix_call.calls + 1};
  return kFakeTempBytes;
}

BackwardPlan plan(DType dtype, int64_t count, int64_t num_rows, int64_t dim,
                  const PlanOverrides& overrides = {}) {
  radix_call = {};
  return plan_backward({dtype, count, num_rows, dim}, &fake_radix_temp_bytes, overrides);
}

size_t aligned(size_t bytes) { return (bytes + 255) / 256 * 256; }

TEST(CudaBackwardPlan, TileBitsAreTheLeastGivingAtMost32Tiles) {
  struct Case {
    int64_t count;
    int tile_bits;
    int64_t tiles;
  };
  for (const Case& c : std::vector<Case>{{1, 9, 1},
                                         {512, 9, 1},
                                         {513, 9, 2},
                                         {5000, 9, 10},
                                         {16383, 9, 32},
                                         {16384, 10, 16},
                                         {16385, 10, 17},
                                         {32767, 10, 32},
                                         {32768, 11, 16},
                                         {65536, 11, 32}}) {
    const BackwardPlan p = plan(DType::kFloat32, c.count, kGpt2Vocab, kGpt2Dim);
    EXPECT_TRUE(p.small) << c.count;
    EXPECT_EQ(p.tile_bits, c.tile_bits) << c.count;
    EXPECT_EQ(p.tiles, c.tiles) << c.count;
  }
  // Above 32 tiles of 2048 the radix sort takes over; the tile size stays at its maximum.
  const BackwardPlan large = plan(DType::kFloat32, int64_t{1} << 20, kGpt2Vocab, kGpt2Dim);
  EXPECT_EQ(large.tile_bits, kMaxTileBits);
  EXPECT_EQ(large.tiles, 0);
}

TEST(CudaBackwardPlan, SmallPathUpTo65536PositionsAndKeysOfAtMost64Bits) {
  EXPECT_TRUE(plan(DType::kBFloat16, 65536, kGpt2Vocab, kGpt2Dim).small);
  EXPECT_EQ(radix_call.calls, 0);  // CUB is asked on the radix path only
  const BackwardPlan radix = plan(DType::kBFloat16, 65537, kGpt2Vocab, kGpt2Dim);
  EXPECT_FALSE(radix.small);
  EXPECT_EQ(radix.end_bit, 16);  // bit_width(50257): keys in [0, V]
  EXPECT_EQ(radix_call.calls, 1);
  EXPECT_EQ(radix_call.key_bytes, 4);
  EXPECT_EQ(radix_call.count, 65537);
  EXPECT_EQ(radix_call.end_bit, 16);
  // bit_width(V) + tile_bits <= 64: V = 2^54 has 55 bits, 55 + 9 = 64.
  EXPECT_TRUE(plan(DType::kFloat32, 1000, int64_t{1} << 54, 8).small);
  EXPECT_FALSE(plan(DType::kFloat32, 1000, int64_t{1} << 55, 8).small);
  // The override forces the radix sort at any size.
  PlanOverrides overrides;
  overrides.radix_sort = true;
  const BackwardPlan forced = plan(DType::kFloat32, 100, 3, 8, overrides);
  EXPECT_FALSE(forced.small);
  EXPECT_EQ(forced.end_bit, 2);
  EXPECT_EQ(radix_call.calls, 1);
}

TEST(CudaBackwardPlan, WideKeysAndWideTileKeys) {
  // Sorted rows and positions: 64 bits when V >= 2^32 - 1 (the padding key V must fit) or
  // N >= 2^32.
  EXPECT_FALSE(plan(DType::kFloat32, 1000, (int64_t{1} << 32) - 2, 8).wide_keys);
  EXPECT_TRUE(plan(DType::kFloat32, 1000, (int64_t{1} << 32) - 1, 8).wide_keys);
  EXPECT_FALSE(plan(DType::kFloat32, (int64_t{1} << 32) - 1, 10, 8).wide_keys);
  EXPECT_EQ(radix_call.key_bytes, 4);
  EXPECT_TRUE(plan(DType::kFloat32, int64_t{1} << 32, 10, 8).wide_keys);
  EXPECT_EQ(radix_call.key_bytes, 8);
  // Tile keys (row << tile_bits | local position): 64 bits when bit_width(V) + tile_bits > 32.
  struct Case {
    int64_t count, narrow_rows;  // the largest V with 32-bit tile keys at this count
  };
  for (const Case& c : std::vector<Case>{{1000, (int64_t{1} << 23) - 1},
                                         {16384, (int64_t{1} << 22) - 1},
                                         {65536, (int64_t{1} << 21) - 1}}) {
    EXPECT_FALSE(plan(DType::kFloat32, c.count, c.narrow_rows, 8).wide_composite) << c.count;
    EXPECT_TRUE(plan(DType::kFloat32, c.count, c.narrow_rows + 1, 8).wide_composite) << c.count;
    EXPECT_FALSE(plan(DType::kFloat32, c.count, c.narrow_rows + 1, 8).wide_keys) << c.count;
  }
  PlanOverrides overrides;
  overrides.wide_keys = true;
  const BackwardPlan forced = plan(DType::kFloat32, 1000, 50, 8, overrides);
  EXPECT_TRUE(forced.wide_keys);
  EXPECT_TRUE(forced.wide_composite);
  EXPECT_EQ(forced.sorted_positions, aligned(8 * 1000));
  EXPECT_EQ(forced.tile_keys, 2 * aligned(8 * 1000));
}

TEST(CudaBackwardPlan, ColumnSlicesKeepTheWindowSlotsWithin32MiB) {
  // GPT-2: 255 slots of 768 float32 columns (765 KiB): one slice.
  const BackwardPlan gpt2 = plan(DType::kBFloat16, 8192, kGpt2Vocab, kGpt2Dim);
  EXPECT_EQ(gpt2.windows, 256);
  EXPECT_EQ(gpt2.slice_columns, kGpt2Dim);
  EXPECT_EQ(gpt2.slices, 1);
  // Llama-3 at N = 2^20: 32767 slots; 256 float32 columns fit 32 MiB, 128 float64 ones.
  const int64_t llama_n = int64_t{1} << 20;
  const BackwardPlan llama = plan(DType::kBFloat16, llama_n, 128256, 4096);
  EXPECT_EQ(llama.windows, 32768);
  EXPECT_EQ(llama.slice_columns, 256);
  EXPECT_EQ(llama.slices, 16);
  EXPECT_EQ(plan(DType::kFloat32, llama_n, 128256, 4096).slice_columns, 256);
  EXPECT_EQ(plan(DType::kFloat64, llama_n, 128256, 4096).slice_columns, 128);
  EXPECT_EQ(plan(DType::kFloat32, llama_n, 128256, 4100).slices, 17);  // the last one partial
  // At least 8 columns, even over the budget: then the slots take 8 acc bytes per slot.
  const int64_t huge_n = int64_t{1} << 26;
  const BackwardPlan huge = plan(DType::kFloat64, huge_n, 128256, 4096);
  EXPECT_EQ(huge.slice_columns, kSliceAlign);
  EXPECT_EQ(huge.slices, 512);
  // Without slots (N <= 32) a slice is the whole row, up to 2^24 columns.
  EXPECT_EQ(plan(DType::kFloat32, 32, 10, (int64_t{1} << 24) + 3).slice_columns, kMaxSliceColumns);
  EXPECT_EQ(plan(DType::kFloat32, 32, 10, (int64_t{1} << 24) + 3).slices, 2);
  EXPECT_EQ(plan(DType::kFloat32, 32, 10, 5).slice_columns, 5);
  // A smaller budget (the emulation tests' override): 62 slots x 16 float32 columns <= 4096.
  PlanOverrides overrides;
  overrides.parts_budget = 4096;
  const BackwardPlan capped = plan(DType::kFloat32, 2000, 60, 40, overrides);
  EXPECT_EQ(capped.slice_columns, 16);
  EXPECT_EQ(capped.slices, 3);
  overrides.parts_budget = 1;
  EXPECT_EQ(plan(DType::kFloat32, 2000, 60, 40, overrides).slice_columns, kSliceAlign);
  // In general: multiples of 8 (or all of D), within the budget unless 8, and the most that fit.
  for (const DType dtype : {DType::kFloat32, DType::kFloat64, DType::kFloat16}) {
    for (const int64_t count : {int64_t{33}, int64_t{8192}, int64_t{100000}, int64_t{1} << 22}) {
      for (const int64_t dim : {int64_t{8}, int64_t{768}, int64_t{4096}, int64_t{65536}}) {
        const BackwardPlan p = plan(dtype, count, 1000, dim);
        const auto acc = static_cast<size_t>(dtype_bytes(accumulation_dtype(dtype)));
        const auto slots = static_cast<size_t>(p.windows - 1);
        const auto slot_bytes = [&](int64_t columns) {
          return slots * static_cast<size_t>(columns) * acc;
        };
        SCOPED_TRACE(::testing::Message()
                     << "dtype " << static_cast<int>(dtype) << " N " << count << " D " << dim);
        EXPECT_TRUE(p.slice_columns == dim || p.slice_columns % kSliceAlign == 0);
        EXPECT_TRUE(slot_bytes(p.slice_columns) <= kPartsBudget || p.slice_columns == kSliceAlign);
        if (p.slice_columns < dim) {
          EXPECT_GT(slot_bytes(p.slice_columns + kSliceAlign), kPartsBudget);
        }
        EXPECT_EQ(p.slices, (dim + p.slice_columns - 1) / p.slice_columns);
      }
    }
  }
}

TEST(CudaBackwardPlan, WorkspaceLayout) {
  // GPT-2, bfloat16 (float32 slots): sorted rows, sorted positions, 16 tiles' 32-bit keys, the
  // 255 x 768 slots.
  const BackwardPlan gpt2 = plan(DType::kBFloat16, 8192, kGpt2Vocab, kGpt2Dim);
  EXPECT_EQ(gpt2.sorted_rows, 0u);
  EXPECT_EQ(gpt2.sorted_positions, 4u * 8192);
  EXPECT_EQ(gpt2.tile_keys, 8u * 8192);
  EXPECT_EQ(gpt2.slots, 12u * 8192);
  EXPECT_EQ(gpt2.total, 12u * 8192 + 255u * 768 * 4);
  EXPECT_EQ(plan(DType::kFloat64, 8192, kGpt2Vocab, kGpt2Dim).total, 12u * 8192 + 255u * 768 * 8);
  // One tile: no tile keys; N <= 32: no slots. Each array rounded up to 256 bytes.
  const BackwardPlan one_tile = plan(DType::kFloat32, 100, 10, 8);
  EXPECT_EQ(one_tile.sorted_positions, 512u);
  EXPECT_EQ(one_tile.tile_keys, 0u);
  EXPECT_EQ(one_tile.slots, 1024u);
  EXPECT_EQ(one_tile.total, 1024u + 256);  // 3 slots x 8 columns x 4 bytes
  EXPECT_EQ(plan(DType::kFloat32, 32, 10, 8).total, 2 * 256u);
  // The radix path at Llama-3 (N = 2^20): keys and values, CUB's storage, 32767 x 256 slots.
  const BackwardPlan llama = plan(DType::kFloat32, int64_t{1} << 20, 128256, 4096);
  EXPECT_FALSE(llama.small);
  EXPECT_EQ(llama.sorted_positions, 4 * kMiB);
  EXPECT_EQ(llama.keys, 8 * kMiB);
  EXPECT_EQ(llama.values, 12 * kMiB);
  EXPECT_EQ(llama.sort_temp, 16 * kMiB);
  EXPECT_EQ(llama.sort_temp_bytes, kFakeTempBytes);
  EXPECT_EQ(llama.slots, 16 * kMiB + 1024);
  EXPECT_EQ(llama.total, 16 * kMiB + 1024 + 32767u * 256 * 4);
  EXPECT_LE(llama.total, 48 * kMiB);
  // Every array on a 256-byte boundary, in order, and within the documented bound.
  for (const DType dtype : {DType::kFloat32, DType::kFloat64, DType::kBFloat16}) {
    for (const int64_t count : {int64_t{1}, int64_t{33}, int64_t{777}, int64_t{16385},
                                int64_t{65537}, int64_t{1} << 21}) {
      for (const int64_t num_rows : {int64_t{3}, kGpt2Vocab, int64_t{1} << 24, int64_t{1} << 33}) {
        const BackwardPlan p = plan(dtype, count, num_rows, 100);
        SCOPED_TRACE(::testing::Message()
                     << "dtype " << static_cast<int>(dtype) << " N " << count << " V " << num_rows);
        std::vector<size_t> used{p.sorted_rows, p.sorted_positions};
        for (const size_t offset : {p.tile_keys, p.keys, p.values, p.sort_temp, p.slots}) {
          if (offset != 0) used.push_back(offset);
        }
        used.push_back(p.total);
        for (const size_t offset : used) EXPECT_EQ(offset % kWorkspaceAlign, 0u);
        EXPECT_TRUE(std::is_sorted(used.begin(), used.end()));
        const auto n = static_cast<size_t>(count);
        const size_t k = p.wide_keys ? 8 : 4;
        const size_t tile_keys = p.wide_composite ? 8 : 4;
        const auto acc = static_cast<size_t>(dtype_bytes(accumulation_dtype(dtype)));
        const auto slots = static_cast<size_t>(p.windows - 1);
        EXPECT_LE(p.total, 2 * k * n + std::max(tile_keys * n, 2 * k * n + kFakeTempBytes) +
                               std::max(kPartsBudget, slots * 8 * acc) + 6 * kWorkspaceAlign);
      }
    }
  }
}

TEST(CudaBackwardPlan, StreamOperations) {
  // 512 < N <= 65536: tile sort, merge, window parts, rows.
  EXPECT_EQ(plan(DType::kBFloat16, 8192, kGpt2Vocab, kGpt2Dim).operations, 4);
  EXPECT_EQ(plan(DType::kFloat32, 8192, kGpt2Vocab, kGpt2Dim).operations, 4);
  EXPECT_EQ(plan(DType::kBFloat16, 513, kGpt2Vocab, kGpt2Dim).operations, 4);
  EXPECT_EQ(plan(DType::kBFloat16, 65536, 128256, 4096).operations, 4);
  // One tile: no merge; N <= 32: no window parts either.
  EXPECT_EQ(plan(DType::kBFloat16, 512, kGpt2Vocab, kGpt2Dim).operations, 3);
  EXPECT_EQ(plan(DType::kBFloat16, 33, kGpt2Vocab, kGpt2Dim).operations, 3);
  EXPECT_EQ(plan(DType::kBFloat16, 32, kGpt2Vocab, kGpt2Dim).operations, 2);
  EXPECT_EQ(plan(DType::kBFloat16, 1, kGpt2Vocab, kGpt2Dim).operations, 2);
  // CUB's onesweep: 4 + 2 per 8 key bits.
  static_assert(radix_sort_operations(1) == 6 && radix_sort_operations(8) == 6);
  static_assert(radix_sort_operations(9) == 8 && radix_sort_operations(16) == 8);
  static_assert(radix_sort_operations(17) == 10 && radix_sort_operations(64) == 20);
  // The radix path: the key kernel, CUB's, then window parts and rows per slice.
  EXPECT_EQ(plan(DType::kBFloat16, 65537, kGpt2Vocab, kGpt2Dim).operations, 1 + 8 + 2);
  EXPECT_EQ(plan(DType::kFloat32, int64_t{1} << 20, 128256, 4096).operations, 1 + 10 + 16 * 2);
  // Slices repeat the window parts and rows: 3 slices at a 4096-byte budget.
  PlanOverrides overrides;
  overrides.parts_budget = 4096;
  EXPECT_EQ(plan(DType::kFloat32, 2000, 60, 40, overrides).operations, 2 + 3 * 2);
}

TEST(CudaBackwardPlan, VariantNames) {
  EXPECT_EQ(backward_variant_names(), "baseline, hot_rows, side_zero, merge_path, all");
  for (const BackwardVariant variant : kBackwardVariants) {
    EXPECT_EQ(parse_backward_variant(backward_variant_name(variant)), variant);
  }
  EXPECT_EQ(parse_backward_variant(""), BackwardVariant::kBaseline);  // the switch unset
  for (const char* name : {"fastest", "Baseline", "baseline,hot_rows", " all", "hot-rows"}) {
    EXPECT_EQ(parse_backward_variant(name), std::nullopt) << name;
  }
}

PlanOverrides with_variant(BackwardVariant variant) {
  PlanOverrides overrides;
  overrides.variant = variant;
  return overrides;
}

TEST(CudaBackwardPlan, VariantsShareTheWorkspaceAndDifferInKernelsAndOperations) {
  for (const int64_t count : {int64_t{1}, int64_t{33}, int64_t{8192}, int64_t{16384},
                              int64_t{16385}, int64_t{65536}, int64_t{65537}, int64_t{1} << 20}) {
    const BackwardPlan base = plan(DType::kBFloat16, count, kGpt2Vocab, kGpt2Dim);
    for (const BackwardVariant variant : kBackwardVariants) {
      const BackwardPlan p =
          plan(DType::kBFloat16, count, kGpt2Vocab, kGpt2Dim, with_variant(variant));
      SCOPED_TRACE(::testing::Message() << backward_variant_name(variant) << " N " << count);
      EXPECT_EQ(p.total, base.total);
      EXPECT_EQ(p.slots, base.slots);
      EXPECT_EQ(p.small, base.small);
      // merge_path: the rank kernel from 17 tiles (N > 16384) up to the radix sort's threshold.
      EXPECT_EQ(p.rank_merge, uses_merge_path(variant) && count > 16384 && count <= 65536);
      EXPECT_EQ(p.hot_tasks, uses_hot_rows(variant) ? p.windows - 1 : 0);
      EXPECT_EQ(p.side_zero, uses_side_zero(variant));
      EXPECT_EQ(p.operations, base.operations + (p.side_zero ? 1 : 0));
      EXPECT_EQ(p.event_operations, p.side_zero ? 4 : 0);
      EXPECT_EQ(base.event_operations, 0);
    }
  }
  // GPT-2, N = 8192 and 65536: 4 operations, 5 with the side stream's memset; N = 131072 (CUB,
  // 16 key bits): 11 and 12.
  for (const int64_t count : {int64_t{8192}, int64_t{65536}}) {
    EXPECT_EQ(
        plan(DType::kBFloat16, count, kGpt2Vocab, kGpt2Dim, with_variant(BackwardVariant::kHotRows))
            .operations,
        4);
    EXPECT_EQ(plan(DType::kBFloat16, count, kGpt2Vocab, kGpt2Dim,
                   with_variant(BackwardVariant::kMergePath))
                  .operations,
              4);
    EXPECT_EQ(plan(DType::kBFloat16, count, kGpt2Vocab, kGpt2Dim,
                   with_variant(BackwardVariant::kSideZero))
                  .operations,
              5);
    EXPECT_EQ(
        plan(DType::kBFloat16, count, kGpt2Vocab, kGpt2Dim, with_variant(BackwardVariant::kAll))
            .operations,
        5);
  }
  EXPECT_EQ(
      plan(DType::kBFloat16, 131072, kGpt2Vocab, kGpt2Dim, with_variant(BackwardVariant::kAll))
          .operations,
      12);
  // Slices repeat the rows kernel with its hot-row tasks, not the memset.
  PlanOverrides capped = with_variant(BackwardVariant::kAll);
  capped.parts_budget = 4096;
  EXPECT_EQ(plan(DType::kFloat32, 2000, 60, 40, capped).operations, 1 + 2 + 3 * 2);
}

TEST(CudaBackwardPlan, ZeroSizes) {
  // Any of N, V, D zero: the index check (N > 0), the zeros (V x D > 0), an empty workspace.
  struct Case {
    int64_t count, num_rows, dim, operations;
  };
  for (const Case& c : std::vector<Case>{
           {0, 10, 8, 1}, {5, 0, 8, 1}, {5, 10, 0, 1}, {0, 0, 8, 0}, {0, 10, 0, 0}, {0, 0, 0, 0}}) {
    const BackwardPlan p = plan(DType::kFloat32, c.count, c.num_rows, c.dim);
    SCOPED_TRACE(::testing::Message() << "N " << c.count << " V " << c.num_rows << " D " << c.dim);
    EXPECT_EQ(p.operations, c.operations);
    EXPECT_EQ(p.total, 0u);
    EXPECT_EQ(p.slices, 0);
    EXPECT_FALSE(p.small);
    EXPECT_FALSE(p.wide_keys);
    EXPECT_EQ(radix_call.calls, 0);
    // No sort, no sums: no variant changes anything (no side stream).
    const BackwardPlan all =
        plan(DType::kFloat32, c.count, c.num_rows, c.dim, with_variant(BackwardVariant::kAll));
    EXPECT_EQ(all.operations, c.operations);
    EXPECT_FALSE(all.side_zero || all.rank_merge || all.hot_tasks > 0);
    EXPECT_EQ(all.event_operations, 0);
  }
}

}  // namespace
}  // namespace unit_scaling::kernels::cuda
