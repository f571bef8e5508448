// The summation pieces of the CUDA backward (backward.cu), in the order of
// kernels/summation_order.h: a row's part in one sum window from zero in entry order
// (sum_entries), the parts of its later windows -- the window slots -- added in window order
// (add_entered_windows), times s, rounded once (store_scaled); and step B, window_parts_kernel,
// which fills the slots. Kernels and device functions only; backward.cu launches them.
#pragma once

#include <type_traits>

#include "kernels/cuda/backward_sort.cuh"
#include "kernels/element.h"
#include "kernels/summation_order.h"

namespace unit_scaling::kernels::cuda::detail {

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

// Adds to sum, in window order, the row's slots of windows w = first, first + 1, ... while the
// row enters w from the window before (sorted_rows[32 w] == row; the caller knows that the row
// holds the last entry of window first - 1): a long row's chain without knowing where the row
// ends. The first keys and slots of kSlotDepth windows are loaded before their additions (one
// memory wait per kSlotDepth windows); a batch's loads past the row's last window are wasted but
// in bounds (every window w >= 1 has a slot). slot_words: the slice's words (slot stride / kWord).
// kSlotDepth: 8 windows, 4 for 8-column words: at most 32 accumulators in flight.
template <int kWord>
constexpr int kSlotDepth = kWord >= 8 ? 4 : 8;

template <int kWord, typename Acc, typename Key>
__device__ __forceinline__ void add_entered_windows(Acc (&sum)[kWord], Key row, int64_t first,
                                                    int64_t windows,
                                                    const Key* __restrict__ sorted_rows,
                                                    const Acc* __restrict__ slots,
                                                    int64_t slot_words, int64_t word) {
  constexpr int kDepth = kSlotDepth<kWord>;
  for (int64_t w = first; w < windows; w += kDepth) {
    bool enters[kDepth];
    Acc part[kDepth][kWord];
    for (int b = 0; b < kDepth; ++b) {
      enters[b] = w + b < windows && sorted_rows[(w + b) * kSumWindow] == row;
      const Acc* slot = slots + ((min(w + b, windows - 1) - 1) * slot_words + word) * kWord;
      for (int k = 0; k < kWord; ++k) part[b][k] = slot[k];
    }
    for (int b = 0; b < kDepth; ++b) {
      if (!enters[b]) return;  // the row ends in window w + b - 1
      for (int k = 0; k < kWord; ++k) sum[k] += part[b][k];
    }
  }
}

// The summation kernels' minimum blocks per SM (launch.cuh): registers for 8 words in flight
// (sum_entries) or 32 accumulators of slots (add_entered_windows): 64 a thread; 80 for 8-column
// float16 words, whose software conversion needs more (70 on sm_80 without a bound).
template <typename T, int kWord>
constexpr int kSumBlocks =
    blocks_with_registers(std::is_same_v<T, kernels::detail::Float16>&& kWord > 1 ? 80 : 64);

// result[index] = round(scale * sum), one word.
template <typename T, int kWord>
__device__ __forceinline__ void store_scaled(Word<T, kWord>* __restrict__ result, int64_t index,
                                             const typename Element<T>::Acc (&sum)[kWord],
                                             typename Element<T>::Acc scale) {
  Word<T, kWord> out;
  for (int k = 0; k < kWord; ++k) out.v[k] = Element<T>::store(sum[k] * scale);
  result[index] = out;
}

// Step B. One block per window w in [1, windows) (grid-stride), threads over the column words.
// When a row enters w from the window before (sorted_rows[32w - 1] == sorted_rows[32w]), its part
// in w (its entries of w, from zero, in order) goes to slot w - 1; at most one row enters a
// window, so one slot per window boundary; windows nobody enters write nothing.
template <typename T, int kWord, typename Key>
__global__ void __launch_bounds__(kThreads, kSumBlocks<T, kWord>)
    window_parts_kernel(const Word<T, kWord>* __restrict__ grad, Slice slice,
                        const Key* __restrict__ sorted_rows, const Key* __restrict__ positions,
                        int64_t count, int64_t num_rows,
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

}  // namespace unit_scaling::kernels::cuda::detail
