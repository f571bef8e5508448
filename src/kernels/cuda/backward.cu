// The unit-scaled weight gradient on the device: deterministic, no host syncs, no atomics in the
// sums, a fixed number of stream operations known on the host (capturable in a CUDA graph).
//
// Math: grad_weight[r, :] = s * sum_{p : indices[p] == r, r != padding} grad_out[p, :], each row
// summed in the order of kernels/summation_order.h -- the positions sorted by row (ascending
// within a row, padding left out), cut into windows of kSumWindow = 32 sorted entries; a row's
// part in each window summed from zero, the parts added in window order -- in float32 (float64
// for double), scaled once, rounded once. The CPU kernel (kernels/backward.cpp) follows the same
// order, so the two agree bit for bit.
//
// Algorithm. Step A sorts the (row, position) pairs; steps B and C sum.
//  A, small N (N <= 65536: at most 32 tiles of 512 to 2048 consecutive positions):
//    A1 tile_sort: one block per tile reads the indices, checks them (device assertion), and
//       sorts the composite keys (row << tile_bits | local position) of its tile in shared
//       memory (bitonic, one compare-exchange per thread and step; the keys are distinct, so
//       the order is the stable one). A single tile (N <= 512) writes the sorted rows and
//       positions and A is done.
//    A2 merge: one warp per entry; lane u counts the entries of tile u ordered before it --
//       rows <= r in earlier tiles, rows < r in later ones: one binary search in a 512-2048
//       entry tile -- the warp adds the counts and the entry is written at its index in its own
//       tile plus that sum. No scan, no histogram, no memset; the tiles stay in L2.
//  A, large N: a key kernel (the rows, the padding row as V, which sorts after every row; the
//    index check) and CUB's stable device radix sort over bit_width(V) bits.
//  B window parts (only when N > 32): one block per window w >= 1. When a row enters w from
//    the window before (sorted_rows[32w - 1] == sorted_rows[32w]), its part in w (its entries of
//    w, from zero, in order) goes to slot w - 1. At most one row enters a window, so one slot
//    per window boundary; windows nobody enters write nothing.
//  C rows: one block per 32 rows; 33 threads find the rows' bounds [begin, end) in the sorted
//    rows by binary search (no offsets array) into shared memory, then one thread per (row,
//    column word) writes the row: zeros for rows nobody looked up; the row's entries of its first
//    window summed from zero, plus the slots of the following windows in order; times s, rounded
//    once. A heavy (Zipf) row costs one thread <= 32 additions plus one per window it spans;
//    the windows' parts are summed in parallel by step B.
//  B and C run once per column slice: the slots of one slice take at most kPartsBudget (32 MiB)
//  bytes, so for huge N x D the columns are processed in slices (a number known on the host).
// The host decides the path, tile size, slices, workspace layout and the number of stream
// operations from the shapes alone (backward_plan.h, plain C++): 4 operations at GPT-2
// (V = 50257, D = 768, N = 8192; before: 12), a workspace of O(N) keys plus at most 32 MiB of
// window slots per slice (no offsets array, no per-window pair of parts).
// Memory traffic: grad_out (N x D) read once (each entry by step B or C), grad_weight (V x D)
// written once; the slots written once and read once; O(N) keys through the sort (in shared
// memory for small N), and log2(N) cached reads of the sorted rows per 32 output rows.
#include <algorithm>
#ifndef UNIT_SCALING_CUDA_EMULATION
#include <cub/device/device_radix_sort.cuh>
#endif
#include <type_traits>

#include "kernels/cuda/backward_plan.h"
#include "kernels/cuda/index_report.cuh"
#include "kernels/element.h"
#include "kernels/summation_order.h"

namespace unit_scaling::kernels::cuda {
namespace {

using kernels::detail::Element;

// Columns per thread: 16 bytes of the gradient's storage type, when the row allows.
template <typename T>
constexpr int kWideWord = static_cast<int>(16 / sizeof(T));
// Column slices are multiples of kSliceAlign columns: every kWideWord divides it.
static_assert(kSliceAlign % kWideWord<uint16_t> == 0 && kSliceAlign % kWideWord<float> == 0 &&
              kSliceAlign % kWideWord<double> == 0);

template <typename T, int kWord>
struct alignas(sizeof(T) * kWord) Word {
  T v[kWord];
};

// A tile of the small-N sort in shared memory: at most 16 KiB of 64-bit keys.
static_assert(kMaxTileEntries * sizeof(uint64_t) <= detail::kStaticSharedBytes);

constexpr int kRowsPerBlock = 32;  // step C
// rows_kernel indexes (row, column word) of a block in 32 bits.
static_assert(kRowsPerBlock * kMaxSliceColumns < int64_t{1} << 31);

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

// Step A1. One block per tile of 2^tile_bits consecutive positions (grid-stride over the tiles).
template <typename Index, typename Key, typename Composite>
__global__ void tile_sort_kernel(const Index* __restrict__ indices, int64_t count, int64_t num_rows,
                                 int64_t padding_row, int tile_bits,
                                 Composite* __restrict__ tile_keys, Key* __restrict__ sorted_rows,
                                 Key* __restrict__ sorted_positions) {
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
        if (!detail::index_valid(row, num_rows)) {
          detail::report_bad_index(trap, count, begin + i, row, num_rows);
        }
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

// Step A2. One warp per entry of the tile-sorted keys; lane u counts the entries of tile u
// (u, u + 32, ...) that go before it, and the warp adds the counts (integers: exact).
template <typename Key, typename Composite>
__global__ void merge_kernel(const Composite* __restrict__ tile_keys, int64_t count, int tile_bits,
                             Key* __restrict__ sorted_rows, Key* __restrict__ sorted_positions) {
  const int64_t entries = int64_t{1} << tile_bits;
  const Composite local = (Composite{1} << tile_bits) - 1;
  const int64_t tiles = (count + entries - 1) / entries;
  const int lane = static_cast<int>(threadIdx.x % detail::kWarp);
  const int64_t warps = int64_t{gridDim.x} * (blockDim.x / detail::kWarp);
  for (int64_t e = detail::first_item() / detail::kWarp; e < count; e += warps) {  // per warp
    const int64_t t = e >> tile_bits;
    const Composite key = tile_keys[e];
    const Composite row_first = key & ~local;  // (row, local position 0)
    int64_t before = 0;
    for (int64_t u = lane; u < tiles; u += detail::kWarp) {
      if (u == t) continue;
      const int64_t begin = u * entries;
      const int64_t n = min(entries, count - begin);
      // Earlier tiles: their entries of rows <= r come first; later tiles: rows < r.
      before += u < t ? count_at_most(tile_keys + begin, n, key | local)
                      : count_below(tile_keys + begin, n, row_first);
    }
    for (int offset = detail::kWarp / 2; offset > 0; offset /= 2) {
      before += __shfl_xor_sync(0xFFFFFFFFu, before, offset);
    }
    if (lane == 0) {
      const int64_t rank = before + (e - t * entries);
      sorted_rows[rank] = static_cast<Key>(key >> tile_bits);
      sorted_positions[rank] = static_cast<Key>(t * entries + static_cast<int64_t>(key & local));
    }
  }
}

// Large N, step 1 of the radix-sort path: key = the row (V for padding), value = the position.
template <typename Index, typename Key>
__global__ void make_keys_kernel(const Index* __restrict__ indices, int64_t count, int64_t num_rows,
                                 int64_t padding_row, Key* __restrict__ keys,
                                 Key* __restrict__ values) {
  const IndexReport trap{nullptr, true};
  for (int64_t p = detail::first_item(); p < count; p += detail::stride()) {
    const int64_t row = indices[p];
    if (!detail::index_valid(row, num_rows))
      detail::report_bad_index(trap, count, p, row, num_rows);
    keys[p] = static_cast<Key>(row == padding_row ? num_rows : row);
    values[p] = static_cast<Key>(p);
  }
}

// The column words [first_word, first_word + words) of every row: one slice of steps B and C.
struct Slice {
  int64_t words_per_row, first_word, words;
};

// Sums the gradient rows of sorted entries [begin, end) at one column word into sum (from zero),
// in entry order. The loads of kBatch entries are issued before their additions, so a long run
// waits for memory once per batch, not once per entry.
template <typename T, int kWord, typename Key>
__device__ __forceinline__ void sum_entries(const Word<T, kWord>* __restrict__ grad,
                                            int64_t words_per_row, int64_t word,
                                            const Key* __restrict__ positions, int64_t begin,
                                            int64_t end, typename Element<T>::Acc (&sum)[kWord]) {
  constexpr int kBatch = 8;
  for (int k = 0; k < kWord; ++k) sum[k] = 0;
  int64_t i = begin;
  for (; i + kBatch <= end; i += kBatch) {
    Word<T, kWord> g[kBatch];
    for (int b = 0; b < kBatch; ++b) {
      g[b] = grad[static_cast<int64_t>(positions[i + b]) * words_per_row + word];
    }
    for (int b = 0; b < kBatch; ++b) {
      for (int k = 0; k < kWord; ++k) sum[k] += Element<T>::load(g[b].v[k]);
    }
  }
  for (; i < end; ++i) {
    const Word<T, kWord> g = grad[static_cast<int64_t>(positions[i]) * words_per_row + word];
    for (int k = 0; k < kWord; ++k) sum[k] += Element<T>::load(g.v[k]);
  }
}

// Step B. One block per window w in [1, windows) (grid-stride), threads over the column words.
template <typename T, int kWord, typename Key>
__global__ void window_parts_kernel(const Word<T, kWord>* __restrict__ grad, Slice slice,
                                    const Key* __restrict__ sorted_rows,
                                    const Key* __restrict__ positions, int64_t count,
                                    int64_t num_rows,
                                    typename Element<T>::Acc* __restrict__ slots) {
  using Acc = typename Element<T>::Acc;
  const int64_t windows = (count + kSumWindow - 1) / kSumWindow;
  for (int64_t w = 1 + blockIdx.x; w < windows; w += gridDim.x) {
    const int64_t begin = w * kSumWindow;
    const Key row = sorted_rows[begin];
    // Padding (key V), or no row enters w from the window before: nothing to keep.
    if (static_cast<int64_t>(row) >= num_rows || sorted_rows[begin - 1] != row) continue;
    // The row's entries in w: [begin, end), found by a binary search (5 loads, not up to 32
    // dependent ones).
    const int64_t end =
        begin + count_at_most(sorted_rows + begin, sum_window_end(begin, count) - begin, row);
    Acc* slot = slots + (w - 1) * slice.words * kWord;
    for (int64_t word = threadIdx.x; word < slice.words; word += blockDim.x) {
      Acc sum[kWord];
      sum_entries<T, kWord>(grad, slice.words_per_row, slice.first_word + word, positions, begin,
                            end, sum);
      for (int k = 0; k < kWord; ++k) slot[word * kWord + k] = sum[k];
    }
  }
}

// Step C. One block per kRowsPerBlock rows (grid-stride), threads over (row, column word).
template <typename T, int kWord, typename Key>
__global__ void rows_kernel(const Word<T, kWord>* __restrict__ grad, Slice slice,
                            const Key* __restrict__ sorted_rows, const Key* __restrict__ positions,
                            int64_t count, int64_t num_rows,
                            const typename Element<T>::Acc* __restrict__ slots,
                            typename Element<T>::Acc scale, Word<T, kWord>* __restrict__ result) {
  using Acc = typename Element<T>::Acc;
  UNIT_SCALING_SHARED_ARRAY(int64_t, bounds, kRowsPerBlock + 1);
  const int64_t groups = (num_rows + kRowsPerBlock - 1) / kRowsPerBlock;
  for (int64_t g = blockIdx.x; g < groups; g += gridDim.x) {  // uniform over the block
    const int64_t first_row = g * kRowsPerBlock;
    const int64_t rows = min(int64_t{kRowsPerBlock}, num_rows - first_row);
    // Row first_row + i owns the sorted entries [bounds[i], bounds[i + 1]); key V (padding)
    // sorts after every row.
    for (int64_t i = threadIdx.x; i <= rows; i += blockDim.x) {
      bounds[i] = count_below(sorted_rows, count, static_cast<Key>(first_row + i));
    }
    __syncthreads();
    // 32-bit division: rows x slice.words < 2^31 (slices are at most kMaxSliceColumns wide).
    const auto words = static_cast<unsigned>(slice.words);
    for (unsigned t = threadIdx.x; t < static_cast<unsigned>(rows) * words; t += blockDim.x) {
      const unsigned r = t / words;
      const int64_t word = slice.first_word + (t - r * words);
      const int64_t begin = bounds[r];
      const int64_t end = bounds[r + 1];
      Acc sum[kWord];
      if (begin == end) {
        for (int k = 0; k < kWord; ++k) sum[k] = 0;
      } else {
        // The first window's entries from zero (the whole row when it stays in one window).
        sum_entries<T, kWord>(grad, slice.words_per_row, word, positions, begin,
                              sum_window_end(begin, end), sum);
        // Then the slots of the windows the row enters, in window order (loads in batches).
        const Acc* slot = slots + (sum_window(begin) * slice.words + (word - slice.first_word)) *
                                      kWord;  // slot of window sum_window(begin) + 1
        const int64_t stride = slice.words * kWord;
        int64_t left = sum_window(end - 1) - sum_window(begin);
        for (; left >= 4; left -= 4, slot += 4 * stride) {
          Acc part[4][kWord];
          for (int b = 0; b < 4; ++b) {
            for (int k = 0; k < kWord; ++k) part[b][k] = slot[b * stride + k];
          }
          for (int b = 0; b < 4; ++b) {
            for (int k = 0; k < kWord; ++k) sum[k] += part[b][k];
          }
        }
        for (; left > 0; --left, slot += stride) {
          for (int k = 0; k < kWord; ++k) sum[k] += slot[k];
        }
      }
      Word<T, kWord> out;
      for (int k = 0; k < kWord; ++k) out.v[k] = Element<T>::store(sum[k] * scale);
      result[(first_row + r) * slice.words_per_row + word] = out;
    }
    __syncthreads();  // before the next group overwrites `bounds`
  }
}

// The bytes of CUB's temporary storage for the radix sort (the planner's RadixSortTempBytes).
template <typename Key>
size_t cub_sort_temp_bytes(int64_t count, int end_bit) {
  size_t bytes = 0;
  using NumItems = std::conditional_t<sizeof(Key) == 4, uint32_t, int64_t>;
  cub::DeviceRadixSort::SortPairs(nullptr, bytes, static_cast<const Key*>(nullptr),
                                  static_cast<Key*>(nullptr), static_cast<const Key*>(nullptr),
                                  static_cast<Key*>(nullptr), static_cast<NumItems>(count), 0,
                                  end_bit);
  return bytes;
}

size_t radix_sort_temp_bytes(int key_bytes, int64_t count, int end_bit) {
  return key_bytes == 8 ? cub_sort_temp_bytes<uint64_t>(count, end_bit)
                        : cub_sort_temp_bytes<uint32_t>(count, end_bit);
}

// The plan of backward_plan.h; the host emulation's settings (tests) override the shapes' rules.
BackwardPlan plan_for(const BackwardParams& params) {
  PlanOverrides overrides;
#ifdef UNIT_SCALING_CUDA_EMULATION
  overrides.wide_keys = ::emulation::config.wide_keys;
  overrides.radix_sort = ::emulation::config.large_sort;
  overrides.parts_budget = ::emulation::config.parts_budget;
#endif
  return plan_backward({params.dtype, params.indices.count, params.num_rows, params.dim},
                       &radix_sort_temp_bytes, overrides);
}

template <typename T, int kWord, typename Key>
void launch_sums(const BackwardPlan& plan, const BackwardParams& params, char* workspace,
                 cudaStream_t stream) {
  using Acc = typename Element<T>::Acc;
  const int64_t dim = params.dim;
  const int64_t count = params.indices.count;
  const int64_t num_rows = params.num_rows;
  const auto scale = static_cast<Acc>(params.scale);
  const int64_t words_per_row = dim / kWord;
  const auto* grad = static_cast<const Word<T, kWord>*>(params.grad_out);
  const auto* rows = reinterpret_cast<const Key*>(workspace + plan.sorted_rows);
  const auto* positions = reinterpret_cast<const Key*>(workspace + plan.sorted_positions);
  auto* slots = reinterpret_cast<Acc*>(workspace + plan.slots);
  auto* result = static_cast<Word<T, kWord>*>(params.grad_weight);
  for (int64_t column = 0; column < dim; column += plan.slice_columns) {
    const int64_t columns = std::min(plan.slice_columns, dim - column);
    const Slice slice{words_per_row, column / kWord, columns / kWord};
    if (plan.windows > 1) {
      const int threads = slice.words < detail::kThreads
                              ? static_cast<int>((slice.words + 31) / 32 * 32)
                              : detail::kThreads;
      UNIT_SCALING_LAUNCH(detail::blocks_for(plan.windows - 1, 1), threads, stream,
                          window_parts_kernel<T, kWord, Key>)
      (grad, slice, rows, positions, count, num_rows, slots);
    }
    UNIT_SCALING_LAUNCH(detail::blocks_for(num_rows, kRowsPerBlock), detail::kThreads, stream,
                        rows_kernel<T, kWord, Key>)
    (grad, slice, rows, positions, count, num_rows, slots, scale, result);
  }
}

template <typename Index, typename Key>
cudaError_t sort(const BackwardPlan& plan, const BackwardParams& params, char* workspace,
                 cudaStream_t stream) {
  const auto* indices = static_cast<const Index*>(params.indices.data);
  const int64_t count = params.indices.count;
  const int64_t num_rows = params.num_rows;
  const int64_t padding_row = params.padding_row;
  auto* rows = reinterpret_cast<Key*>(workspace + plan.sorted_rows);
  auto* positions = reinterpret_cast<Key*>(workspace + plan.sorted_positions);
  if (plan.small) {
    const auto tile_sort = [&](auto composite_tag) {
      using Composite = decltype(composite_tag);
      auto* tile_keys = reinterpret_cast<Composite*>(workspace + plan.tile_keys);
      // One compare-exchange per thread and step (fewer threads for a small single tile).
      const int64_t pairs = std::min(count, int64_t{1} << plan.tile_bits) / 2;
      const int threads = static_cast<int>(std::max<int64_t>(32, (pairs + 31) / 32 * 32));
      UNIT_SCALING_LAUNCH(detail::blocks_for(plan.tiles, 1), threads, stream,
                          tile_sort_kernel<Index, Key, Composite>)
      (indices, count, num_rows, padding_row, plan.tile_bits, tile_keys, rows, positions);
      if (plan.tiles > 1) {
        UNIT_SCALING_LAUNCH(detail::blocks_for(count * detail::kWarp), detail::kThreads, stream,
                            merge_kernel<Key, Composite>)
        (tile_keys, count, plan.tile_bits, rows, positions);
      }
    };
    if (plan.wide_composite) {
      tile_sort(uint64_t{});
    } else {
      tile_sort(uint32_t{});
    }
    return cudaGetLastError();
  }
  auto* keys = reinterpret_cast<Key*>(workspace + plan.keys);
  auto* values = reinterpret_cast<Key*>(workspace + plan.values);
  UNIT_SCALING_LAUNCH(detail::blocks_for(count), detail::kThreads, stream,
                      make_keys_kernel<Index, Key>)
  (indices, count, num_rows, padding_row, keys, values);
  if (cudaError_t error = cudaGetLastError(); error != cudaSuccess) return error;
  size_t temp_bytes = plan.sort_temp_bytes;
  using NumItems = std::conditional_t<sizeof(Key) == 4, uint32_t, int64_t>;
  return cub::DeviceRadixSort::SortPairs(workspace + plan.sort_temp, temp_bytes, keys, rows, values,
                                         positions, static_cast<NumItems>(count), 0, plan.end_bit,
                                         stream);
}

template <typename Key>
cudaError_t run(const BackwardPlan& plan, const BackwardParams& params, char* workspace,
                cudaStream_t stream) {
  const cudaError_t sorted = kernels::detail::with_index_type(params.indices.type, [&](auto tag) {
    using Index = typename decltype(tag)::type;
    return sort<Index, Key>(plan, params, workspace, stream);
  });
  if (sorted != cudaSuccess) return sorted;
  kernels::detail::with_dtype(params.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const auto address = reinterpret_cast<uintptr_t>(params.grad_out) |
                         reinterpret_cast<uintptr_t>(params.grad_weight);
    if (params.dim % kWideWord<T> == 0 && address % 16 == 0) {
      launch_sums<T, kWideWord<T>, Key>(plan, params, workspace, stream);
    } else {
      launch_sums<T, 1, Key>(plan, params, workspace, stream);
    }
  });
  return cudaGetLastError();
}

}  // namespace

size_t backward_workspace_bytes(const BackwardParams& params) { return plan_for(params).total; }

int64_t backward_stream_operations(const BackwardParams& params) {
  return plan_for(params).operations;
}

cudaError_t write_scaled_gradient(const BackwardParams& params, void* workspace,
                                  size_t workspace_bytes, cudaStream_t stream) {
  const BackwardPlan plan = plan_for(params);
  if (workspace_bytes < plan.total) return cudaErrorInvalidValue;
  auto* base = static_cast<char*>(workspace);
  if (params.indices.count == 0 || params.num_rows == 0 || params.dim == 0) {
    // Nothing to sum: zeros (every format's +0.0 is all-zero bits), after the index check.
    if (params.indices.count > 0) {
      if (cudaError_t error =
              check_indices(params.indices, params.num_rows, IndexReport{nullptr, true}, stream);
          error != cudaSuccess) {
        return error;
      }
    }
    const auto bytes = static_cast<size_t>(params.num_rows * params.dim) *
                       static_cast<size_t>(dtype_bytes(params.dtype));
    if (bytes == 0) return cudaSuccess;  // no zero-byte memset (grad_weight may be null)
    return cudaMemsetAsync(params.grad_weight, 0, bytes, stream);
  }
  return plan.wide_keys ? run<uint64_t>(plan, params, base, stream)
                        : run<uint32_t>(plan, params, base, stream);
}

}  // namespace unit_scaling::kernels::cuda
