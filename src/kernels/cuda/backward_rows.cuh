// Step C of the CUDA backward (backward.cu): every output row of one column slice, written once,
// scaled once, rounded once. Two kernels, each with the hot_rows variant's leading hot-row tasks
// (backward_hot_rows.cuh) when kHotRows:
//  - rows_kernel (baseline): blocks over groups of 32 output rows, zeros for rows nobody looked
//    up, a binary search of the whole sorted rows per block for the groups' bounds.
//  - segments_kernel (side_zero): blocks over sum windows; only the rows looked up, from the
//    heads of their runs; grad_weight was zeroed beforehand on a side stream.
#pragma once

#include "kernels/cuda/backward_hot_rows.cuh"

namespace unit_scaling::kernels::cuda::detail {

constexpr int kRowsPerBlock = 32;  // rows_kernel
// rows_kernel indexes (row, column word) of a block in 32 bits.
static_assert(kRowsPerBlock * kMaxSliceColumns < int64_t{1} << 31);

// The tasks of a rows or segments kernel: with kHotRows the first windows - 1 are hot-row tasks
// (one per window boundary), then `tasks` of the kernel's own.
template <bool kHotRows>
__device__ __forceinline__ int64_t hot_tasks(int64_t count) {
  return kHotRows ? (count + kSumWindow - 1) / kSumWindow - 1 : 0;
}

// One block per kRowsPerBlock rows (grid-stride), threads over (row, column word). 33 threads find
// the rows' bounds [begin, end) in the sorted rows by binary search (no offsets array) into shared
// memory; then each thread writes zeros for rows nobody looked up, or the row's entries of its
// first window summed from zero, plus the slots of the following windows in order (4 loads in
// flight); times s, rounded once. With kHotRows, rows spanning several windows are the hot-row
// tasks' and skipped here.
template <typename T, int kWord, typename Key, bool kHotRows>
__global__ void __launch_bounds__(kThreads, kSumBlocks<T, kWord>)
    rows_kernel(const Word<T, kWord>* __restrict__ grad, Slice slice,
                const Key* __restrict__ sorted_rows, const Key* __restrict__ positions,
                int64_t count, int64_t num_rows, const typename Element<T>::Acc* __restrict__ slots,
                typename Element<T>::Acc scale, Word<T, kWord>* __restrict__ result) {
  using Acc = typename Element<T>::Acc;
  UNIT_SCALING_SHARED_ARRAY(int64_t, bounds, kRowsPerBlock + 1);
  const int64_t hot = hot_tasks<kHotRows>(count);
  const int64_t tasks = hot + (num_rows + kRowsPerBlock - 1) / kRowsPerBlock;
  for (int64_t task = blockIdx.x; task < tasks; task += gridDim.x) {  // uniform over the block
    if (kHotRows && task < hot) {
      hot_row_task<T, kWord>(task + 1, grad, slice, sorted_rows, positions, count, num_rows, slots,
                             scale, result);
      continue;
    }
    const int64_t first_row = (task - hot) * kRowsPerBlock;
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
      if (kHotRows && begin < end && sum_window(begin) != sum_window(end - 1)) continue;
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
      store_scaled<T, kWord>(result, (first_row + r) * slice.words_per_row + word, sum, scale);
    }
    __syncthreads();  // before the next group overwrites `bounds`
  }
}

// segments_kernel's tasks: (sum window, chunk of kChunkWords column words of the slice).
constexpr int64_t kChunkWords = 32;

// One task per (window, chunk of column words), after the hot-row tasks with kHotRows. grad_weight
// is zero already (the side stream's memset, joined before this launch), so only rows looked up
// are written. The window's 32 sorted rows, with the row before and the row after it, go to
// shared memory; its heads are the entries whose row differs from the entry before (a run's first
// entry; padding, key V, has none). A head's run ends within the window at the next other row
// (a 5-step search in shared memory: no search of the whole sorted array), or goes on into the
// next window: a row spanning windows, which the head's threads finish by adding the slots of the
// windows it enters (add_entered_windows) -- or, with kHotRows, leave to its hot-row task. One
// thread per (head, column word): the run summed from zero, times s, rounded once.
// Memory traffic: grad_out read once (a row's entries of later windows through the slots), each
// looked-up row written once (after the memset's V x D zeros), the sorted rows read once per task.
// Prediction (H100, GPT-2 bf16, N = 8192, uniform): the rows kernel's 77 MB of writes (zeros
// included) behind a ~25 us sort chain become a memset overlapping that chain plus ~12 MB of
// looked-up rows after it, without the per-block search prologue: ~39 us -> ~10 us after the
// sort, i.e. ~69 -> ~45 us if the memset hides behind the sort.
template <typename T, int kWord, typename Key, bool kHotRows>
__global__ void __launch_bounds__(kThreads, kSumBlocks<T, kWord>)
    segments_kernel(const Word<T, kWord>* __restrict__ grad, Slice slice,
                    const Key* __restrict__ sorted_rows, const Key* __restrict__ positions,
                    int64_t count, int64_t num_rows,
                    const typename Element<T>::Acc* __restrict__ slots,
                    typename Element<T>::Acc scale, Word<T, kWord>* __restrict__ result) {
  using Acc = typename Element<T>::Acc;
  // rows[i + 1]: the row of entry i of the window; rows[0] and rows[n + 1]: the rows before and
  // after it (V, which no valid row equals, at the ends of the sorted array).
  UNIT_SCALING_SHARED_ARRAY(Key, rows, kSumWindow + 2);
  // runs[i]: 0, or for a head (its run's end in the window) << 1 | (the run goes on after it).
  UNIT_SCALING_SHARED_ARRAY(unsigned, runs, kSumWindow);
  const int64_t hot = hot_tasks<kHotRows>(count);
  const int64_t windows = (count + kSumWindow - 1) / kSumWindow;
  const int64_t chunks = (slice.words + kChunkWords - 1) / kChunkWords;
  const int64_t tasks = hot + windows * chunks;
  for (int64_t task = blockIdx.x; task < tasks; task += gridDim.x) {  // uniform over the block
    if (kHotRows && task < hot) {
      hot_row_task<T, kWord>(task + 1, grad, slice, sorted_rows, positions, count, num_rows, slots,
                             scale, result);
      continue;
    }
    const int64_t window = (task - hot) / chunks;
    const int64_t first_word = (task - hot - window * chunks) * kChunkWords;
    const int64_t begin = window * kSumWindow;
    const auto n = static_cast<unsigned>(min(kSumWindow, count - begin));
    for (unsigned i = threadIdx.x; i < n + 2; i += blockDim.x) {
      const int64_t entry = begin - 1 + i;
      rows[i] = entry >= 0 && entry < count ? sorted_rows[entry] : static_cast<Key>(num_rows);
    }
    __syncthreads();
    for (unsigned i = threadIdx.x; i < n; i += blockDim.x) {
      const Key row = rows[i + 1];
      unsigned run = 0;
      if (static_cast<int64_t>(row) < num_rows && rows[i] != row) {
        const auto end = static_cast<unsigned>(i + count_at_most(rows + i + 1, n - i, row));
        run = end << 1 | (end == n && rows[n + 1] == row ? 1u : 0u);
      }
      runs[i] = run;
    }
    __syncthreads();
    const auto width = static_cast<unsigned>(min(kChunkWords, slice.words - first_word));
    for (unsigned t = threadIdx.x; t < n * width; t += blockDim.x) {
      const unsigned i = t / width;
      const unsigned run = runs[i];
      if (run == 0 || (kHotRows && (run & 1u) != 0)) continue;
      const int64_t word = first_word + (t - i * width);
      const Key row = rows[i + 1];
      Acc sum[kWord];
      sum_entries<T, kWord>(grad, slice.words_per_row, slice.first_word + word, positions,
                            begin + i, begin + (run >> 1), sum);
      if (!kHotRows && (run & 1u) != 0) {
        add_entered_windows<kWord>(sum, row, window + 1, windows, sorted_rows, slots, slice.words,
                                   word);
      }
      store_scaled<T, kWord>(
          result, static_cast<int64_t>(row) * slice.words_per_row + slice.first_word + word, sum,
          scale);
    }
    __syncthreads();  // before the next task overwrites `rows` and `runs`
  }
}

}  // namespace unit_scaling::kernels::cuda::detail
