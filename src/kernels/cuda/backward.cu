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
// Algorithm (baseline). Step A sorts the (row, position) pairs (backward_sort.cuh); steps B and
// C sum (backward_sums.cuh, backward_rows.cuh).
//  A, small N (N <= 65536: at most 32 tiles of 512 to 2048 consecutive positions): tile_sort (one
//    block per tile reads and checks the indices and sorts its composite keys in shared memory;
//    a single tile, N <= 512, is the whole sort), then merge (one warp per entry; lane u counts
//    the entries of tile u ordered before it by a binary search; the entry goes to its rank).
//  A, large N: a key kernel (the rows, padding as V; the index check) and CUB's stable device
//    radix sort over bit_width(V) bits.
//  B window parts (only when N > 32): one block per window boundary w; when a row enters window
//    w from the window before, its part in w goes to slot w - 1.
//  C rows: one block per 32 output rows: the rows' bounds by binary search, then one thread per
//    (row, column word): zeros for rows nobody looked up, else the first window's entries from
//    zero plus the slots of the following windows in order; times s, rounded once.
//  B and C run once per column slice: the slots of one slice take at most kPartsBudget (32 MiB)
//  bytes, so for huge N x D the columns are processed in slices (a number known on the host).
// The host decides the path, tile size, slices, workspace layout and the number of stream
// operations from the shapes and the variant alone (backward_plan.h, plain C++): 4 operations at
// GPT-2 (V = 50257, D = 768, N = 8192), a workspace of O(N) keys plus at most 32 MiB of window
// slots per slice.
// Memory traffic: grad_out (N x D) read once (each entry by step B or C), grad_weight (V x D)
// written once; the slots written once and read once; O(N) keys through the sort (in shared
// memory for small N), and log2(N) cached reads of the sorted rows per 32 output rows.
//
// Variants (backward_variant.h; the same workspace, the same bits; measured H100 baseline at
// GPT-2 bf16, N = 8192: 69 us uniform, 121 us Zipf(1.1), against a ~27 us copy floor; the
// predictions below are to be checked on a GPU):
//  - hot_rows (backward_hot_rows.cuh): each row spanning several windows summed by a block of
//    its own, as the first tasks of the rows kernel (same launches). Saves the Zipf head's serial
//    chains in one rows block: 121 -> ~75 us at Zipf, nothing at uniform.
//  - side_zero (backward_rows.cuh, segments_kernel): grad_weight zeroed by a memset on a side
//    stream (fork at the start, join before step C) while the sort runs; step C writes only the
//    looked-up rows, found from the heads of their runs in the sorted rows (no binary search
//    prologue, no zeros). One more operation (the memset) and 4 event operations. Saves most of
//    step C's 77 MB of writes after the sort: 69 -> ~45 us uniform, if the memset (~25 us at
//    3 TB/s) hides behind the ~25 us sort chain; costs ~12 MB of extra writes (looked-up rows
//    written twice).
//  - merge_path (backward_sort.cuh, rank_kernel): for N > 16384 each entry ranked by its own
//    thread, a warp's 32 threads searching the same tile (coherent) instead of merge_kernel's 32
//    lanes searching 32 tiles. Same launches. Saves most of the merge at N = 65536 (~20-30 us ->
//    ~3-5 us); nothing at N <= 16384.
//  - all: the three; GPT-2 N = 8192 Zipf: ~121 -> ~50 us (5 operations).
#include <algorithm>
#ifndef UNIT_SCALING_CUDA_EMULATION
#include <cub/device/device_radix_sort.cuh>
#endif
#include <type_traits>

#include "kernels/cuda/backward_plan.h"
#include "kernels/cuda/backward_rows.cuh"

namespace unit_scaling::kernels::cuda {
namespace {

using detail::kWideWord;
using detail::Slice;
using detail::Word;
using kernels::detail::Element;

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
BackwardPlan plan_for(const BackwardParams& params, BackwardVariant variant) {
  PlanOverrides overrides;
  overrides.variant = variant;
#ifdef UNIT_SCALING_CUDA_EMULATION
  overrides.wide_keys = ::emulation::config.wide_keys;
  overrides.radix_sort = ::emulation::config.large_sort;
  overrides.parts_budget = ::emulation::config.parts_budget;
#endif
  return plan_backward({params.dtype, params.indices.count, params.num_rows, params.dim},
                       &radix_sort_temp_bytes, overrides);
}

// f(std::bool_constant<flag>{}).
template <typename F>
void with_flag(bool flag, F&& f) {
  if (flag) {
    f(std::true_type{});
  } else {
    f(std::false_type{});
  }
}

// side_zero's fork: the side stream waits for `stream`'s work so far (grad_weight's memory may
// have been another tensor's until now), zeroes grad_weight and records the join.
cudaError_t fork_zeros(const BackwardParams& params, const SideStream& side, cudaStream_t stream) {
  const auto bytes = static_cast<size_t>(params.num_rows * params.dim) *
                     static_cast<size_t>(dtype_bytes(params.dtype));
  cudaError_t error = cudaEventRecord(side.fork, stream);
  if (error == cudaSuccess) error = cudaStreamWaitEvent(side.stream, side.fork, 0);
  if (error == cudaSuccess) error = cudaMemsetAsync(params.grad_weight, 0, bytes, side.stream);
  if (error == cudaSuccess) error = cudaEventRecord(side.join, side.stream);
  return error;
}

// Steps B and C, per column slice. side_zero: `stream` waits for the side stream's zeros before
// the first step C (not before: the memset overlaps the sort and the window parts).
template <typename T, int kWord, typename Key>
cudaError_t launch_sums(const BackwardPlan& plan, const BackwardParams& params, char* workspace,
                        cudaStream_t stream, const SideStream& side) {
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
      UNIT_SCALING_LAUNCH(detail::blocks_for(plan.windows - 1, 1), threads, detail::kThreads,
                          stream, detail::window_parts_kernel<T, kWord, Key>)
      (grad, slice, rows, positions, count, num_rows, slots);
    }
    if (plan.side_zero && column == 0) {
      if (cudaError_t error = cudaStreamWaitEvent(stream, side.join, 0); error != cudaSuccess) {
        return error;
      }
    }
    with_flag(plan.hot_tasks > 0, [&](auto hot) {
      if (plan.side_zero) {
        const int64_t chunks = (slice.words + detail::kChunkWords - 1) / detail::kChunkWords;
        // A thread per (entry, word) of a task: fewer than kThreads for narrow slices.
        const auto threads = static_cast<int>(std::min<int64_t>(
            detail::kThreads, kSumWindow * std::min(detail::kChunkWords, slice.words)));
        UNIT_SCALING_LAUNCH(detail::blocks_for(plan.hot_tasks + plan.windows * chunks, 1), threads,
                            detail::kThreads, stream, detail::segments_kernel<T, kWord, Key, hot>)
        (grad, slice, rows, positions, count, num_rows, slots, scale, result);
      } else {
        const int64_t groups = (num_rows + detail::kRowsPerBlock - 1) / detail::kRowsPerBlock;
        UNIT_SCALING_LAUNCH(detail::blocks_for(plan.hot_tasks + groups, 1), detail::kThreads,
                            detail::kThreads, stream, detail::rows_kernel<T, kWord, Key, hot>)
        (grad, slice, rows, positions, count, num_rows, slots, scale, result);
      }
    });
  }
  return cudaGetLastError();
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
      UNIT_SCALING_LAUNCH(detail::blocks_for(plan.tiles, 1), threads, detail::kSortThreads, stream,
                          detail::tile_sort_kernel<Index, Key, Composite>)
      (indices, count, num_rows, padding_row, plan.tile_bits, tile_keys, rows, positions);
      if (plan.rank_merge) {
        UNIT_SCALING_LAUNCH(detail::blocks_for(count), detail::kThreads, detail::kThreads, stream,
                            detail::rank_kernel<Key, Composite>)
        (tile_keys, count, plan.tile_bits, rows, positions);
      } else if (plan.tiles > 1) {
        UNIT_SCALING_LAUNCH(detail::blocks_for(count * detail::kWarp), detail::kThreads,
                            detail::kThreads, stream, detail::merge_kernel<Key, Composite>)
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
  UNIT_SCALING_LAUNCH(detail::blocks_for(count), detail::kThreads, detail::kThreads, stream,
                      detail::make_keys_kernel<Index, Key>)
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
                cudaStream_t stream, const SideStream& side) {
  const cudaError_t sorted = kernels::detail::with_index_type(params.indices.type, [&](auto tag) {
    using Index = typename decltype(tag)::type;
    return sort<Index, Key>(plan, params, workspace, stream);
  });
  if (sorted != cudaSuccess) {
    if (plan.side_zero) cudaStreamWaitEvent(stream, side.join, 0);  // join even so
    return sorted;
  }
  return kernels::detail::with_dtype(params.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const auto address = reinterpret_cast<uintptr_t>(params.grad_out) |
                         reinterpret_cast<uintptr_t>(params.grad_weight);
    if (params.dim % kWideWord<T> == 0 && address % 16 == 0) {
      return launch_sums<T, kWideWord<T>, Key>(plan, params, workspace, stream, side);
    }
    return launch_sums<T, 1, Key>(plan, params, workspace, stream, side);
  });
}

}  // namespace

size_t backward_workspace_bytes(const BackwardParams& params, BackwardVariant variant) {
  return plan_for(params, variant).total;
}

int64_t backward_stream_operations(const BackwardParams& params, BackwardVariant variant) {
  return plan_for(params, variant).operations;
}

bool backward_uses_side_stream(const BackwardParams& params, BackwardVariant variant) {
  return plan_for(params, variant).side_zero;
}

cudaError_t write_scaled_gradient(const BackwardParams& params, void* workspace,
                                  size_t workspace_bytes, cudaStream_t stream,
                                  BackwardVariant variant, const SideStream& side) {
  const BackwardPlan plan = plan_for(params, variant);
  if (workspace_bytes < plan.total) return cudaErrorInvalidValue;
  if (plan.side_zero && (side.stream == nullptr || side.fork == nullptr || side.join == nullptr)) {
    return cudaErrorInvalidValue;
  }
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
  if (plan.side_zero) {
    if (cudaError_t error = fork_zeros(params, side, stream); error != cudaSuccess) return error;
  }
  return plan.wide_keys ? run<uint64_t>(plan, params, base, stream, side)
                        : run<uint32_t>(plan, params, base, stream, side);
}

}  // namespace unit_scaling::kernels::cuda
