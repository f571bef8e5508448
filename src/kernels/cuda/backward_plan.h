// The host-side plan of the CUDA backward (backward.cu states the algorithm): from the shapes and
// the variant (backward_variant.h) alone, the sort path, the key widths, the tile size, the column
// slices of steps B and C, the workspace layout and the number of stream operations. Plain C++
// (no CUDA, no LibTorch), so the rules are unit-tested on any host
// (tests/cuda_emulation/backward_plan_test.cpp).
//
// Rules, for N = count, V = num_rows, D = dim (any of them 0: nothing but the index check and
// the zeros, an empty workspace):
//  - tiles of 2^tile_bits positions, tile_bits in [9, 11], the least giving at most 32 tiles;
//    the tile sort (small) when N <= 32 x 2^tile_bits (N <= 65536) and bit_width(V) + tile_bits
//    <= 64, else CUB's radix sort over end_bit = bit_width(V) key bits (padding sorts as V);
//  - 64-bit sorted rows and positions when V >= 2^32 - 1 or N >= 2^32, 64-bit tile keys when
//    bit_width(V) + tile_bits > 32;
//  - window slots (ceil(N / 32) - 1 of them) in column slices: the most multiple-of-8 columns
//    (at least 8, at most min(D, 2^24)) whose slots take at most 32 MiB (acc bytes each: 8 for
//    float64, else 4);
//  - workspace, each array at a multiple of 256 bytes, in this order: sorted rows and positions
//    (k N each, k = 4 or 8 bytes per key); small N with several tiles: tile keys (k' N); large N:
//    keys and values (k N each) and CUB's temporary storage; the slots of one slice. So at most
//    2 k N + max(k' N, 2 k N + CUB) + max(32 MiB, (ceil(N / 32) - 1) x 8 x acc), plus alignment;
//  - stream operations: the sort (tile sort, plus the merge when there are several tiles; or
//    the key kernel plus CUB's radix_sort_operations), then per slice the window parts (when
//    N > 32) and the rows: 4 for 512 < N <= 65536 (GPT-2: V = 50257, D = 768, N = 8192), 3 for
//    32 < N <= 512, 2 for N <= 32.
//  - variants (the same workspace for all): hot_rows and merge_path change kernels, not the
//    count (the hot rows are leading blocks of the rows kernel; the rank kernel replaces the
//    merge for N > kRankMergeAbove); side_zero and all add the side stream's memset: 5 at
//    GPT-2, plus 4 event operations (fork: a record and a wait; join: the same).
// Counted as stream operations: every kernel launch, memset and CUB launch on either stream,
// i.e. the nodes of a captured CUDA graph. Event records and waits are counted apart
// (event_operations): a captured graph turns them into edges, not nodes.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/backward_variant.h"
#include "kernels/kernel_types.h"

namespace unit_scaling::kernels::cuda {

// The small-N sort: at most kMaxTiles tiles of 2^kMinTileBits to 2^kMaxTileBits positions.
constexpr int kMinTileBits = 9;
constexpr int kMaxTileBits = 11;
constexpr int64_t kMaxTileEntries = int64_t{1} << kMaxTileBits;
constexpr int64_t kMaxTiles = 32;  // one per lane of the merge's warp
// merge_path: above this many positions the rank kernel replaces the merge kernel.
constexpr int64_t kRankMergeAbove = 16384;

// Column slices of steps B and C: multiples of kSliceAlign columns (every vector word width
// divides it), at most kMaxSliceColumns, with at most kPartsBudget bytes of window slots.
constexpr int64_t kSliceAlign = 8;
constexpr int64_t kMaxSliceColumns = int64_t{1} << 24;
constexpr size_t kPartsBudget = size_t{32} << 20;

// Every array of the workspace starts at a multiple of this many bytes.
constexpr size_t kWorkspaceAlign = 256;

// The shapes the plan depends on (BackwardParams without the pointers).
struct BackwardShape {
  DType dtype;
  int64_t count;     // N lookups
  int64_t num_rows;  // V
  int64_t dim;       // D
};

// Plan inputs beyond the shapes: the variant, and for tests that reach the large-shape paths
// with small shapes (the host emulation sets them) the rest. The defaults change nothing.
struct PlanOverrides {
  BackwardVariant variant = BackwardVariant::kBaseline;
  bool wide_keys = false;   // 64-bit keys (and tile keys) even where 32 bits would do
  bool radix_sort = false;  // the radix-sort path even for small N
  size_t parts_budget = 0;  // bytes of window slots per column slice; 0: kPartsBudget
};

// Bytes of CUB's temporary storage for a stable radix sort of `count` (key, value) pairs of
// key_bytes (4 or 8) each over key bits [0, end_bit). Only CUDA code can ask CUB, so backward.cu
// passes this in; the planner calls it on the radix-sort path only.
using RadixSortTempBytes = size_t (*)(int key_bytes, int64_t count, int end_bit);

// Everything the host decides before launching: the path, the types, the workspace layout
// (byte offsets into the workspace; 0 for arrays the path does not use) and the stream
// operations.
struct BackwardPlan {
  bool wide_keys = false;       // 64-bit sorted rows and positions (and radix keys and values)
  bool wide_composite = false;  // 64-bit tile keys (small N)
  bool small = false;           // tile sort (else the radix sort)
  int64_t tiles = 0;            // small N: tiles of the tile sort
  int tile_bits = 0;            // log2 of the positions per tile
  int64_t windows = 0;          // ceil(N / 32) summation windows
  int64_t slice_columns = 0;    // columns per slice of steps B and C
  int64_t slices = 0;           // ceil(D / slice_columns)
  int end_bit = 0;              // radix sort: key bits, bit_width(V)
  size_t sorted_rows = 0, sorted_positions = 0, tile_keys = 0, keys = 0, values = 0, slots = 0,
         sort_temp = 0;
  size_t sort_temp_bytes = 0;  // CUB's temporary storage (radix sort)
  size_t total = 0;            // backward_workspace_bytes
  // The variant's parts (all false for empty shapes, whose path has no sort and no sums).
  bool rank_merge = false;       // the rank kernel instead of the merge kernel
  bool side_zero = false;        // zeros on the side stream; the segments kernel
  int64_t hot_tasks = 0;         // hot-row blocks leading each slice's rows or segments kernel
  int64_t operations = 0;        // backward_stream_operations
  int64_t event_operations = 0;  // records and waits of the side stream's fork and join
};

// Stream operations of CUB's onesweep radix sort (CUB 3.0, N above one tile) over end_bit key
// bits: 4 of set-up (histogram, scan, their memsets) and per 8 key bits a memset of its
// look-back states and a onesweep kernel -- measured as captured-graph nodes on an H100
// (tests/cuda_build/device_check.cu).
constexpr int64_t radix_sort_operations(int end_bit) { return 4 + 2 * ((end_bit + 7) / 8); }

// The plan for `shape` (the rules above). radix_sort_temp_bytes: see RadixSortTempBytes.
BackwardPlan plan_backward(const BackwardShape& shape, RadixSortTempBytes radix_sort_temp_bytes,
                           const PlanOverrides& overrides = {});

}  // namespace unit_scaling::kernels::cuda
