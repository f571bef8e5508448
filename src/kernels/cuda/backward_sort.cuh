// Step A of the CUDA backward (backward.cu): the (row, position) pairs sorted by row, stably,
// into sorted_rows and sorted_positions. Kernels only; backward.cu launches them.
//  - tile_sort_kernel: one block per tile of 2^tile_bits consecutive positions (at most 32 tiles
//    of 512 to 2048) reads and checks the indices and bitonic-sorts the composite keys
//    (row << tile_bits | local position) in shared memory; one tile is the whole sort.
//  - merge_kernel (baseline): one warp per entry, lane u binary-searching tile u.
//  - rank_kernel (merge_path, N > kRankMergeAbove): one thread per entry, searching every tile.
//  - make_keys_kernel (N > 65536): keys and values for CUB's radix sort.
// Ranks are integer counts, exact in any order: every route gives the same sorted arrays.
#pragma once

#include "kernels/cuda/backward_plan.h"
#include "kernels/cuda/index_report.cuh"

namespace unit_scaling::kernels::cuda::detail {

// A tile of the small-N sort in shared memory: at most 16 KiB of 64-bit keys; one
// compare-exchange per thread and step.
static_assert(kMaxTileEntries * sizeof(uint64_t) <= kStaticSharedBytes);
constexpr int kSortThreads = static_cast<int>(kMaxTileEntries / 2);
static_assert(kSortThreads <= kMaxThreads);

// The number of entries of sorted[0, n) that are < value (kInclusive: <= value): a binary
// search.
template <bool kInclusive, typename Key>
__device__ __forceinline__ int64_t count_before(const Key* __restrict__ sorted, int64_t n,
                                                Key value) {
  int64_t low = 0;
  while (n > 0) {
    const int64_t half = n / 2;
    const Key probe = sorted[low + half];
    if (kInclusive ? !(value < probe) : probe < value) {
      low += half + 1;
      n -= half + 1;
    } else {
      n = half;
    }
  }
  return low;
}
template <typename Key>
__device__ __forceinline__ int64_t count_below(const Key* __restrict__ sorted, int64_t n,
                                               Key value) {
  return count_before<false>(sorted, n, value);
}
template <typename Key>
__device__ __forceinline__ int64_t count_at_most(const Key* __restrict__ sorted, int64_t n,
                                                 Key value) {
  return count_before<true>(sorted, n, value);
}

// One block per tile of 2^tile_bits consecutive positions (grid-stride over the tiles).
template <typename Index, typename Key, typename Composite>
__global__ void __launch_bounds__(kSortThreads)
    tile_sort_kernel(const Index* __restrict__ indices, int64_t count, int64_t num_rows,
                     int64_t padding_row, int tile_bits, Composite* __restrict__ tile_keys,
                     Key* __restrict__ sorted_rows, Key* __restrict__ sorted_positions) {
  UNIT_SCALING_SHARED_ARRAY(Composite, tile, kMaxTileEntries);
  const IndexReport trap{nullptr, true};
  const int64_t entries = int64_t{1} << tile_bits;
  const Composite local = (Composite{1} << tile_bits) - 1;
  const int64_t tiles = (count + entries - 1) / entries;
  for (int64_t t = blockIdx.x; t < tiles; t += gridDim.x) {  // uniform over the block
    const int64_t begin = t * entries;
    const auto n = static_cast<unsigned>(min(entries, count - begin));
    unsigned size = 2;  // the bitonic network's width: a power of two >= n
    while (size < n) size *= 2;
    for (unsigned i = threadIdx.x; i < size; i += blockDim.x) {
      Composite key = ~Composite{0};  // fillers sort after every entry
      if (i < n) {
        const int64_t row = indices[begin + i];
        if (!index_valid(row, num_rows)) report_bad_index(trap, count, begin + i, row, num_rows);
        const auto key_row = static_cast<Composite>(row == padding_row ? num_rows : row);
        key = static_cast<Composite>(key_row << tile_bits) | static_cast<Composite>(i);
      }
      tile[i] = key;
    }
    __syncthreads();
    // 32-bit index arithmetic and no division: j is a power of two.
    for (unsigned k = 2; k <= size; k *= 2) {
      for (unsigned j = k / 2; j > 0; j /= 2) {
        for (unsigned i = threadIdx.x; i < size / 2; i += blockDim.x) {
          const unsigned low = ((i & ~(j - 1)) << 1) | (i & (j - 1));
          const Composite a = tile[low];
          const Composite b = tile[low + j];
          if ((a > b) == ((low & k) == 0)) {
            tile[low] = b;
            tile[low + j] = a;
          }
        }
        __syncthreads();
      }
    }
    for (unsigned i = threadIdx.x; i < n; i += blockDim.x) {
      if (tiles == 1) {
        sorted_rows[i] = static_cast<Key>(tile[i] >> tile_bits);
        sorted_positions[i] = static_cast<Key>(tile[i] & local);
      } else {
        tile_keys[begin + i] = tile[i];
      }
    }
    __syncthreads();  // before the next tile reuses `tile`
  }
}

// An entry e of tile t goes before the entries of other tiles ordered before it: in an earlier
// tile the entries of rows <= r (keys <= key | local), in a later tile those of rows < r (keys
// < key & ~local). Its rank: e's index in its tile plus those counts.
template <typename Composite>
struct RankBounds {
  Composite earlier, later;
  __device__ __forceinline__ RankBounds(Composite key, Composite local)
      : earlier(key | local), later(key & ~local) {}
  __device__ __forceinline__ bool precedes(Composite other, bool earlier_tile) const {
    return earlier_tile ? !(earlier < other) : other < later;
  }
};

// Baseline step A2. One warp per entry of the tile-sorted keys; lane u counts the entries of tile
// u (u, u + 32, ...) that go before it, and the warp adds the counts (integers: exact). The lanes
// search 32 different tiles: each of the ~tile_bits loads of a search touches 32 cache lines.
template <typename Key, typename Composite>
__global__ void __launch_bounds__(kThreads)
    merge_kernel(const Composite* __restrict__ tile_keys, int64_t count, int tile_bits,
                 Key* __restrict__ sorted_rows, Key* __restrict__ sorted_positions) {
  const int64_t entries = int64_t{1} << tile_bits;
  const Composite local = (Composite{1} << tile_bits) - 1;
  const int64_t tiles = (count + entries - 1) / entries;
  const int lane = static_cast<int>(threadIdx.x % kWarp);
  const int64_t warps = int64_t{gridDim.x} * (blockDim.x / kWarp);
  for (int64_t e = first_item() / kWarp; e < count; e += warps) {  // per warp
    const int64_t t = e >> tile_bits;
    const Composite key = tile_keys[e];
    const RankBounds<Composite> bounds(key, local);
    int64_t before = 0;
    for (int64_t u = lane; u < tiles; u += kWarp) {
      if (u == t) continue;
      const int64_t begin = u * entries;
      const int64_t n = min(entries, count - begin);
      before += u < t ? count_at_most(tile_keys + begin, n, bounds.earlier)
                      : count_below(tile_keys + begin, n, bounds.later);
    }
    for (int offset = kWarp / 2; offset > 0; offset /= 2) {
      before += __shfl_xor_sync(0xFFFFFFFFu, before, offset);
    }
    if (lane == 0) {
      const int64_t rank = before + (e - t * entries);
      sorted_rows[rank] = static_cast<Key>(key >> tile_bits);
      sorted_positions[rank] = static_cast<Key>(t * entries + static_cast<int64_t>(key & local));
    }
  }
}

// merge_path's step A2 (N > kRankMergeAbove: 17 to 32 tiles of 1024 or 2048). One thread per
// entry finds the rank merge_kernel's warp finds, by its own searches of every tile, kRankBatch
// tiles at a time (independent loads in flight), each a branchless search of tile_bits + 1 steps
// (every thread of the grid runs the same steps: no divergence). A warp's 32 threads hold 32
// consecutive entries of one tile (tiles are multiples of 32 entries), i.e. 32 neighbouring keys:
// they search the same tile at the same step, so their probes share one or two cache lines
// where merge_kernel's lanes touch 32. Same probes per entry as merge_kernel (one search per
// other tile); ~16x fewer cache-line requests, 32x fewer warps.
// Prediction (H100, GPT-2, N = 65536, 32 tiles of 2048): merge ~20-30 us -> ~3-5 us.
constexpr int kRankBatch = 8;

template <typename Key, typename Composite>
__global__ void __launch_bounds__(kThreads, blocks_with_registers(64))
    rank_kernel(const Composite* __restrict__ tile_keys, int64_t count, int tile_bits,
                Key* __restrict__ sorted_rows, Key* __restrict__ sorted_positions) {
  const unsigned entries = 1u << tile_bits;
  const Composite local = (Composite{1} << tile_bits) - 1;
  const int64_t tiles = (count + entries - 1) >> tile_bits;
  for (int64_t e = first_item(); e < count; e += stride()) {
    const int64_t t = e >> tile_bits;
    const Composite key = tile_keys[e];
    const RankBounds<Composite> bounds(key, local);
    // Whether entry i of tile u goes before e; false past the tile's end and in e's own tile.
    const auto precedes = [&](int64_t u, unsigned i) {
      const int64_t begin = u << tile_bits;
      return u < tiles && u != t && begin + i < count &&
             bounds.precedes(tile_keys[begin + i], u < t);
    };
    int64_t rank = e - (t << tile_bits);
    for (int64_t first = 0; first < tiles; first += kRankBatch) {
      // low[b]: the entries of tile first + b known to precede e. Steps of entries / 2, ...,
      // 1 probe entry low + step - 1; the last probe decides entry low itself.
      unsigned low[kRankBatch];
      for (int b = 0; b < kRankBatch; ++b) low[b] = 0;
      for (unsigned step = entries / 2; step > 0; step /= 2) {
        for (int b = 0; b < kRankBatch; ++b) {
          if (precedes(first + b, low[b] + step - 1)) low[b] += step;
        }
      }
      for (int b = 0; b < kRankBatch; ++b) {
        rank += low[b] + (precedes(first + b, low[b]) ? 1 : 0);
      }
    }
    sorted_rows[rank] = static_cast<Key>(key >> tile_bits);
    sorted_positions[rank] = static_cast<Key>((t << tile_bits) + static_cast<int64_t>(key & local));
  }
}

// Large N, step 1 of the radix-sort path: key = the row (V for padding), value = the position.
template <typename Index, typename Key>
__global__ void __launch_bounds__(kThreads)
    make_keys_kernel(const Index* __restrict__ indices, int64_t count, int64_t num_rows,
                     int64_t padding_row, Key* __restrict__ keys, Key* __restrict__ values) {
  const IndexReport trap{nullptr, true};
  for (int64_t p = first_item(); p < count; p += stride()) {
    const int64_t row = indices[p];
    if (!index_valid(row, num_rows)) report_bad_index(trap, count, p, row, num_rows);
    keys[p] = static_cast<Key>(row == padding_row ? num_rows : row);
    values[p] = static_cast<Key>(p);
  }
}

}  // namespace unit_scaling::kernels::cuda::detail
