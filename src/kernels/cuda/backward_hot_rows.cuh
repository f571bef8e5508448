// The hot_rows variant of the CUDA backward (backward.cu): a row whose sorted entries span more
// than one sum window is written by a block of its own, not by one thread per column word inside
// a rows block. Each column word's sum is the same chain either way -- the row's entries of its
// first window from zero, then the slots of the windows it enters, in window order (the order of
// kernels/summation_order.h) -- so the bits are the same; what changes is who runs the chains.
// In the baseline, the rows block of the Zipf head (rows 0-31 at GPT-2 hold ~40% of the lookups)
// runs all of its 32 rows' chains with 256 threads, 4 slots in flight, after a binary-search
// prologue: one block, serial, at the end of the kernel. Here each hot row gets a block (its
// column words over the threads, kSlotDepth = 8 slots in flight), and those blocks are the first
// tasks of the rows (or segments) kernel -- no extra launch, scheduled before the row groups --
// which then skip the hot rows.
// Prediction (H100, GPT-2 bf16, N = 8192, Zipf 1.1): the ~50 us serial tail of the rows kernel
// drops to the longest single chain (~36 windows: ~5 us); uniform: unchanged (a handful of hot
// rows, 255 blocks that return after 2-3 cached loads).
#pragma once

#include "kernels/cuda/backward_sums.cuh"

namespace unit_scaling::kernels::cuda::detail {

// Task `boundary` (window boundary b in [1, windows)) writes the row that holds the last entry
// of window b - 1 and the first of window b if the row starts in window b - 1 (b is its first
// boundary); otherwise it returns after two or three loads. Threads over the slice's words.
template <typename T, int kWord, typename Key>
__device__ __forceinline__ void hot_row_task(
    int64_t boundary, const Word<T, kWord>* __restrict__ grad, Slice slice,
    const Key* __restrict__ sorted_rows, const Key* __restrict__ positions, int64_t count,
    int64_t num_rows, const typename Element<T>::Acc* __restrict__ slots,
    typename Element<T>::Acc scale, Word<T, kWord>* __restrict__ result) {
  using Acc = typename Element<T>::Acc;
  const int64_t windows = (count + kSumWindow - 1) / kSumWindow;
  const int64_t next = boundary * kSumWindow;  // the first entry of window b
  const int64_t window = next - kSumWindow;    // the first entry of window b - 1
  const Key row = sorted_rows[next];
  if (static_cast<int64_t>(row) >= num_rows || sorted_rows[next - 1] != row) return;
  if (window > 0 && sorted_rows[window - 1] == row) return;  // an earlier boundary's row
  const int64_t begin = window + count_below(sorted_rows + window, kSumWindow, row);
  const int64_t out = static_cast<int64_t>(row) * slice.words_per_row + slice.first_word;
  for (int64_t word = threadIdx.x; word < slice.words; word += blockDim.x) {
    Acc sum[kWord];
    sum_entries<T, kWord>(grad, slice.words_per_row, slice.first_word + word, positions, begin,
                          next, sum);
    add_entered_windows<kWord>(sum, row, boundary, windows, sorted_rows, slots, slice.words, word);
    store_scaled<T, kWord>(result, out + word, sum, scale);
  }
}

}  // namespace unit_scaling::kernels::cuda::detail
