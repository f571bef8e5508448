// The unit-scaled weight gradient on the device, deterministic and without host syncs.
//
// Math: grad_weight[r, :] = s * sum_{p : indices[p] == r, r != padding} grad_out[p, :].
// Algorithm (every step a kernel on the stream; sizes known on the host up front):
//  1. keys: key[p] = indices[p] (the padding row's positions get the key V, which sorts after
//     every row), value[p] = p; a bad index stops the device (assertion).
//  2. a stable radix sort of (key, value) over the bit_width(V) low bits (CUB): the positions
//     grouped by row, ascending within a row -- the order of kernels/summation_order.h.
//  3. offsets: offsets[r] = the first sorted entry with key >= r (a binary search per row), so
//     row r owns the sorted entries [offsets[r], offsets[r + 1]).
//  4. window parts: the sorted entries are cut into windows of kSumWindow. A row inside one
//     window is summed entirely by step 5. For a row that spans windows, each window's part of
//     it is summed here, one block per window, in float32 (float64): the part of the first run
//     of a window into first_part[w], of the last run into last_part[w].
//  5. rows: one thread per (row, column word) writes the row: zeros for rows nobody looked up;
//     a one-window row summed from zero in order; a longer row as its first window's part
//     plus the following windows' first parts, in window order. Then times s once, rounded
//     once. A heavy (Zipf) row thus costs one thread kSumWindow additions per window in step 4
//     and one addition per window here, instead of one long serial loop.
// The same order as the CPU kernel, so the two agree bit for bit.
// Memory traffic: grad_out (N x D) read once (in step 4 or 5), grad_weight (V x D) written once;
// plus O(N) keys and values through the sort, V + 1 offsets, and 2 N / kSumWindow x D partial
// sums (only the windows' boundary runs are written).
#include <algorithm>
#ifndef UNIT_SCALING_CUDA_EMULATION
#include <cub/device/device_radix_sort.cuh>
#endif
#include <type_traits>

#include "kernels/cuda/index_report.cuh"
#include "kernels/element.h"
#include "kernels/summation_order.h"

namespace unit_scaling::kernels::cuda {
namespace {

using kernels::detail::Element;

// Columns per thread: 16 bytes of the gradient's storage type, when the row allows.
template <typename T>
constexpr int kWideWord = static_cast<int>(16 / sizeof(T));

template <typename T, int kWord>
struct alignas(sizeof(T) * kWord) Word {
  T v[kWord];
};

// Step 1. Key = the row (V for padding positions), value = the position.
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

// Step 3. offsets[r] for r in [0, num_rows]: lower bound of r in the sorted keys.
template <typename Key>
__global__ void offsets_kernel(const Key* __restrict__ sorted_keys, int64_t count, int64_t num_rows,
                               int64_t* __restrict__ offsets) {
  for (int64_t r = detail::first_item(); r <= num_rows; r += detail::stride()) {
    int64_t low = 0;
    int64_t high = count;
    while (low < high) {
      const int64_t mid = low + (high - low) / 2;
      if (static_cast<int64_t>(sorted_keys[mid]) < r) {
        low = mid + 1;
      } else {
        high = mid;
      }
    }
    offsets[r] = low;
  }
}

__device__ __forceinline__ bool spans_windows(int64_t begin, int64_t end) {
  return sum_window(begin) != sum_window(end - 1);
}

// Sums the gradient rows of sorted entries [begin, end), columns [word * kWord, + kWord), from
// zero in order, into sum.
template <typename T, int kWord, typename Key>
__device__ __forceinline__ void sum_entries(const Word<T, kWord>* __restrict__ grad,
                                            int64_t words_per_row, const Key* __restrict__ values,
                                            int64_t begin, int64_t end, int64_t word,
                                            typename Element<T>::Acc (&sum)[kWord]) {
  for (int k = 0; k < kWord; ++k) sum[k] = 0;
  for (int64_t i = begin; i < end; ++i) {
    const Word<T, kWord> g = grad[static_cast<int64_t>(values[i]) * words_per_row + word];
    for (int k = 0; k < kWord; ++k) sum[k] += Element<T>::load(g.v[k]);
  }
}

// Step 4. One block per window (first_window + blockIdx.x), threads over the column words.
template <typename T, int kWord, typename Key>
__global__ void window_parts_kernel(int64_t first_window, const Word<T, kWord>* __restrict__ grad,
                                    int64_t words_per_row, const Key* __restrict__ sorted_keys,
                                    const Key* __restrict__ values,
                                    const int64_t* __restrict__ offsets, int64_t num_rows,
                                    typename Element<T>::Acc* __restrict__ first_part,
                                    typename Element<T>::Acc* __restrict__ last_part) {
  using Acc = typename Element<T>::Acc;
  const int64_t valid = offsets[num_rows];  // entries that are not padding
  const int64_t window = first_window + blockIdx.x;
  const int64_t begin = window * kSumWindow;
  if (begin >= valid) return;
  const int64_t end = sum_window_end(begin, valid);
  const int64_t dim = words_per_row * kWord;
  const auto first_row = static_cast<int64_t>(sorted_keys[begin]);
  const auto last_row = static_cast<int64_t>(sorted_keys[end - 1]);
  const int64_t first_begin = offsets[first_row];
  const int64_t first_end = offsets[first_row + 1];
  const int64_t last_begin = offsets[last_row];
  const int64_t last_end = offsets[last_row + 1];
  const bool first_spans = spans_windows(first_begin, first_end);
  const bool last_spans = last_row != first_row && spans_windows(last_begin, last_end);
  for (int64_t word = threadIdx.x; word < words_per_row; word += blockDim.x) {
    Acc sum[kWord];
    if (first_spans) {
      sum_entries<T, kWord>(grad, words_per_row, values, begin, min(end, first_end), word, sum);
      for (int k = 0; k < kWord; ++k) first_part[window * dim + word * kWord + k] = sum[k];
    }
    if (last_spans) {
      sum_entries<T, kWord>(grad, words_per_row, values, last_begin, end, word, sum);
      for (int k = 0; k < kWord; ++k) last_part[window * dim + word * kWord + k] = sum[k];
    }
  }
}

// Step 5. One thread per (row, column word), grid-stride.
template <typename T, int kWord, typename Key>
__global__ void rows_kernel(const Word<T, kWord>* __restrict__ grad, int64_t words_per_row,
                            const Key* __restrict__ values, const int64_t* __restrict__ offsets,
                            int64_t num_rows,
                            const typename Element<T>::Acc* __restrict__ first_part,
                            const typename Element<T>::Acc* __restrict__ last_part,
                            typename Element<T>::Acc scale, Word<T, kWord>* __restrict__ result) {
  using Acc = typename Element<T>::Acc;
  const int64_t total = num_rows * words_per_row;
  const int64_t dim = words_per_row * kWord;
  for (int64_t t = detail::first_item(); t < total; t += detail::stride()) {
    const int64_t row = t / words_per_row;
    const int64_t word = t - row * words_per_row;
    const int64_t begin = offsets[row];
    const int64_t end = offsets[row + 1];
    Word<T, kWord> out;
    if (begin == end) {
      for (int k = 0; k < kWord; ++k) out.v[k] = Element<T>::store(Acc{0});
      result[t] = out;
      continue;
    }
    Acc sum[kWord];
    if (!spans_windows(begin, end)) {
      sum_entries<T, kWord>(grad, words_per_row, values, begin, end, word, sum);
    } else {
      const int64_t first_window = sum_window(begin);
      const Acc* part = begin == first_window * kSumWindow ? first_part : last_part;
      for (int k = 0; k < kWord; ++k) sum[k] = part[first_window * dim + word * kWord + k];
      for (int64_t w = first_window + 1; w <= sum_window(end - 1); ++w) {
        for (int k = 0; k < kWord; ++k) sum[k] += first_part[w * dim + word * kWord + k];
      }
    }
    for (int k = 0; k < kWord; ++k) out.v[k] = Element<T>::store(sum[k] * scale);
    result[t] = out;
  }
}

// The workspace, carved in this order (each part 256-byte aligned).
struct Layout {
  size_t keys, keys_sorted, values, values_sorted, offsets, first_part, last_part, sort_temp;
  size_t total;
};

constexpr size_t align_up(size_t bytes) { return (bytes + 255) / 256 * 256; }

int bit_width(uint64_t value) {
  int bits = 0;
  while (value) {
    ++bits;
    value >>= 1;
  }
  return bits;
}

// 32-bit keys and values (and sort offsets) when V + 1 and N fit, else 64-bit.
bool narrow_keys(int64_t count, int64_t num_rows) {
  return num_rows < (int64_t{1} << 32) - 1 && count < (int64_t{1} << 32);
}

template <typename Key>
size_t sort_temp_bytes(int64_t count, int end_bit) {
  size_t bytes = 0;
  using NumItems = std::conditional_t<sizeof(Key) == 4, uint32_t, int64_t>;
  cub::DeviceRadixSort::SortPairs(nullptr, bytes, static_cast<const Key*>(nullptr),
                                  static_cast<Key*>(nullptr), static_cast<const Key*>(nullptr),
                                  static_cast<Key*>(nullptr), static_cast<NumItems>(count), 0,
                                  end_bit);
  return bytes;
}

template <typename Key>
Layout layout_for(size_t acc_bytes, int64_t count, int64_t num_rows, int64_t dim) {
  Layout layout{};
  size_t at = 0;
  const auto take = [&at](size_t bytes) {
    const size_t start = at;
    at += align_up(bytes);
    return start;
  };
  const auto n = static_cast<size_t>(count);
  const auto windows = static_cast<size_t>((count + kSumWindow - 1) / kSumWindow);
  layout.keys = take(n * sizeof(Key));
  layout.keys_sorted = take(n * sizeof(Key));
  layout.values = take(n * sizeof(Key));
  layout.values_sorted = take(n * sizeof(Key));
  layout.offsets = take((static_cast<size_t>(num_rows) + 1) * sizeof(int64_t));
  layout.first_part = take(windows * static_cast<size_t>(dim) * acc_bytes);
  layout.last_part = take(windows * static_cast<size_t>(dim) * acc_bytes);
  layout.sort_temp = take(sort_temp_bytes<Key>(count, bit_width(static_cast<uint64_t>(num_rows))));
  layout.total = at;
  return layout;
}

template <typename T, int kWord, typename Key>
void launch_sums(const void* grad_out, int64_t dim, int64_t count, int64_t num_rows, double scale,
                 void* grad_weight, char* workspace, const Layout& layout, cudaStream_t stream) {
  using Acc = typename Element<T>::Acc;
  const int64_t words_per_row = dim / kWord;
  const auto* grad = static_cast<const Word<T, kWord>*>(grad_out);
  const auto* keys = reinterpret_cast<const Key*>(workspace + layout.keys_sorted);
  const auto* values = reinterpret_cast<const Key*>(workspace + layout.values_sorted);
  const auto* offsets = reinterpret_cast<const int64_t*>(workspace + layout.offsets);
  auto* first_part = reinterpret_cast<Acc*>(workspace + layout.first_part);
  auto* last_part = reinterpret_cast<Acc*>(workspace + layout.last_part);
  const int64_t windows = (count + kSumWindow - 1) / kSumWindow;
  const int threads = words_per_row < detail::kThreads
                          ? static_cast<int>((words_per_row + 31) / 32 * 32)
                          : detail::kThreads;
  constexpr int64_t kMaxBlocks = int64_t{1} << 30;  // below grid.x's limit
  for (int64_t first = 0; first < windows; first += kMaxBlocks) {
    const auto blocks = static_cast<unsigned>(std::min(windows - first, kMaxBlocks));
    UNIT_SCALING_LAUNCH(blocks, threads, stream, window_parts_kernel<T, kWord, Key>)
    (first, grad, words_per_row, keys, values, offsets, num_rows, first_part, last_part);
  }
  UNIT_SCALING_LAUNCH(detail::blocks_for(num_rows * words_per_row), detail::kThreads, stream,
                      rows_kernel<T, kWord, Key>)
  (grad, words_per_row, values, offsets, num_rows, first_part, last_part, static_cast<Acc>(scale),
   static_cast<Word<T, kWord>*>(grad_weight));
}

template <typename Key>
cudaError_t run(DType dtype, IndexArray indices, int64_t num_rows, int64_t padding_row,
                const void* grad_out, int64_t dim, double scale, void* grad_weight, char* workspace,
                cudaStream_t stream) {
  const int64_t count = indices.count;
  const Layout layout = layout_for<Key>(dtype == DType::kFloat64 ? 8 : 4, count, num_rows, dim);
  auto* keys = reinterpret_cast<Key*>(workspace + layout.keys);
  auto* values = reinterpret_cast<Key*>(workspace + layout.values);
  auto* keys_sorted = reinterpret_cast<Key*>(workspace + layout.keys_sorted);
  auto* values_sorted = reinterpret_cast<Key*>(workspace + layout.values_sorted);
  auto* offsets = reinterpret_cast<int64_t*>(workspace + layout.offsets);
  kernels::detail::with_index_type(indices.type, [&](auto tag) {
    using Index = typename decltype(tag)::type;
    UNIT_SCALING_LAUNCH(detail::blocks_for(count), detail::kThreads, stream,
                        make_keys_kernel<Index, Key>)
    (static_cast<const Index*>(indices.data), count, num_rows, padding_row, keys, values);
  });
  if (cudaError_t error = cudaGetLastError(); error != cudaSuccess) return error;
  const int end_bit = bit_width(static_cast<uint64_t>(num_rows));
  size_t temp_bytes = layout.total - layout.sort_temp;
  using NumItems = std::conditional_t<sizeof(Key) == 4, uint32_t, int64_t>;
  if (cudaError_t error = cub::DeviceRadixSort::SortPairs(
          workspace + layout.sort_temp, temp_bytes, keys, keys_sorted, values, values_sorted,
          static_cast<NumItems>(count), 0, end_bit, stream);
      error != cudaSuccess) {
    return error;
  }
  UNIT_SCALING_LAUNCH(detail::blocks_for(num_rows + 1), detail::kThreads, stream,
                      offsets_kernel<Key>)
  (keys_sorted, count, num_rows, offsets);
  kernels::detail::with_dtype(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const auto address =
        reinterpret_cast<uintptr_t>(grad_out) | reinterpret_cast<uintptr_t>(grad_weight);
    if (dim % kWideWord<T> == 0 && address % 16 == 0) {
      launch_sums<T, kWideWord<T>, Key>(grad_out, dim, count, num_rows, scale, grad_weight,
                                        workspace, layout, stream);
    } else {
      launch_sums<T, 1, Key>(grad_out, dim, count, num_rows, scale, grad_weight, workspace, layout,
                             stream);
    }
  });
  return cudaGetLastError();
}

}  // namespace

size_t backward_workspace_bytes(DType dtype, int64_t count, int64_t num_rows, int64_t dim) {
  if (count == 0 || num_rows == 0 || dim == 0) return 0;  // nothing to sort or sum
  const size_t acc_bytes = dtype == DType::kFloat64 ? 8 : 4;
  if (narrow_keys(count, num_rows))
    return layout_for<uint32_t>(acc_bytes, count, num_rows, dim).total;
  return layout_for<uint64_t>(acc_bytes, count, num_rows, dim).total;
}

cudaError_t write_scaled_gradient(DType dtype, IndexArray indices, int64_t num_rows,
                                  int64_t padding_row, const void* grad_out, int64_t dim,
                                  double scale, void* grad_weight, void* workspace,
                                  size_t workspace_bytes, cudaStream_t stream) {
  (void)workspace_bytes;
  auto* base = static_cast<char*>(workspace);
  if (indices.count == 0 || num_rows == 0 || dim == 0) {
    // Nothing to sum: zeros (every format's +0.0 is all-zero bits), after the index check.
    if (indices.count > 0) {
      if (cudaError_t error = check_indices(indices, num_rows, IndexReport{nullptr, true}, stream);
          error != cudaSuccess) {
        return error;
      }
    }
    const size_t element = dtype == DType::kFloat64 ? 8 : dtype == DType::kFloat32 ? 4 : 2;
    return cudaMemsetAsync(grad_weight, 0, static_cast<size_t>(num_rows * dim) * element, stream);
  }
  if (narrow_keys(indices.count, num_rows)) {
    return run<uint32_t>(dtype, indices, num_rows, padding_row, grad_out, dim, scale, grad_weight,
                         base, stream);
  }
  return run<uint64_t>(dtype, indices, num_rows, padding_row, grad_out, dim, scale, grad_weight,
                       base, stream);
}

}  // namespace unit_scaling::kernels::cuda
