// The forward row gather on the device.
//
// Math: out[p, :] = weight[indices[p], :].
// Memory traffic: one read of N rows of D elements (scattered over the table) and one
// contiguous write of N x D elements, plus N index reads. The flat space of (position, word)
// pairs is spread over the threads, so neighbouring threads move neighbouring words of a row:
// loads and stores coalesce, and a row's index is read by all its threads from the same cache
// line. Words are 16 bytes when the row bytes, the row stride and the base address allow,
// else 8, 4 or 2; a table with a column stride other than 1 moves element by element.
// Index arithmetic: each thread divides its flat index by the words per row. In 64 bits that is
// a div.s64 (a ~70-instruction subroutine) per word moved; where N x words fits
// (detail::narrow_items: at most 2^31) the host launches the uint32_t instantiation (one
// mul.hi-based 32-bit division). The table offset row x row_stride stays 64-bit (a table may
// exceed 2^32 elements); the moved bytes, hence the results, are the same in both.
#include "kernels/cuda/index_report.cuh"
#include "kernels/element.h"

namespace unit_scaling::kernels::cuda {
namespace {

// A 2-byte word (the element size of float16 / bfloat16).
struct Word2 {
  uint16_t bits;
};

// row_stride and col_stride in words; words_per_row words per output row; Offset counts the flat
// (position, word) index: uint32_t where count x words_per_row <= 2^31, else int64_t. The pointers
// are the kernel's own restrict parameters (not fields of GatherParams): that is what lets the
// compiler load the table and the indices through the read-only path (ld.global.nc).
template <typename Word, typename Index, typename Offset>
__global__ void __launch_bounds__(detail::kThreads)
    gather_kernel(const Word* __restrict__ weight, int64_t num_rows, int64_t row_stride,
                  int64_t col_stride, const Index* __restrict__ indices, int64_t count,
                  int64_t words_per_row, Word* __restrict__ out, IndexReport report) {
  const auto total = static_cast<Offset>(count * words_per_row);
  const auto per_row = static_cast<Offset>(words_per_row);
  for (Offset t = detail::first_item<Offset>(); t < total; t += detail::stride<Offset>()) {
    const Offset position = t / per_row;
    const Offset word = t - position * per_row;
    const int64_t row = indices[position];
    if (detail::index_valid(row, num_rows)) {
      out[t] = weight[row * row_stride + static_cast<int64_t>(word) * col_stride];
    } else {
      if (word == 0) {
        detail::report_bad_index(report, count, static_cast<int64_t>(position), row, num_rows);
      }
      out[t] = Word{};
    }
  }
}

template <typename Word, typename Index>
void launch_indexed(const GatherParams& params, int64_t words_per_row, int64_t row_stride,
                    int64_t col_stride, IndexReport report, cudaStream_t stream) {
  const ConstMatrix& weight = params.weight;
  const int64_t total = params.indices.count * words_per_row;
  const unsigned blocks = detail::blocks_for(total);
  const auto* table = static_cast<const Word*>(weight.data);
  const auto* indices = static_cast<const Index*>(params.indices.data);
  auto* target = static_cast<Word*>(params.out);
  if (detail::narrow_items(total)) {
    UNIT_SCALING_LAUNCH(blocks, detail::kThreads, detail::kThreads, stream,
                        gather_kernel<Word, Index, uint32_t>)
    (table, weight.rows, row_stride, col_stride, indices, params.indices.count, words_per_row,
     target, report);
  } else {
    UNIT_SCALING_LAUNCH(blocks, detail::kThreads, detail::kThreads, stream,
                        gather_kernel<Word, Index, int64_t>)
    (table, weight.rows, row_stride, col_stride, indices, params.indices.count, words_per_row,
     target, report);
  }
}

template <typename Word>
cudaError_t launch(const GatherParams& params, int64_t elements_per_word, int64_t col_stride,
                   IndexReport report, cudaStream_t stream) {
  const int64_t words_per_row = params.weight.cols / elements_per_word;
  const int64_t row_stride = params.weight.row_stride / elements_per_word;
  kernels::detail::with_index_type(params.indices.type, [&](auto tag) {
    using Index = typename decltype(tag)::type;
    launch_indexed<Word, Index>(params, words_per_row, row_stride, col_stride, report, stream);
  });
  return cudaGetLastError();
}

// Launches with the widest word of `word_bytes` or narrower that divides the row (contiguous
// columns), or element by element.
cudaError_t launch_for(const GatherParams& params, IndexReport report, cudaStream_t stream) {
  const ConstMatrix& weight = params.weight;
  const auto element = static_cast<int64_t>(params.element_bytes);
  if (weight.col_stride == 1) {
    const int64_t row_bytes = weight.cols * element;
    const int64_t stride_bytes = weight.row_stride * element;
    const auto address = reinterpret_cast<uintptr_t>(weight.data);
    for (int64_t word : {16, 8, 4, 2}) {
      if (word < element || row_bytes % word || stride_bytes % word || address % word) continue;
      const int64_t per_word = word / element;
      switch (word) {
        case 16:
          return launch<uint4>(params, per_word, 1, report, stream);
        case 8:
          return launch<uint2>(params, per_word, 1, report, stream);
        case 4:
          return launch<uint32_t>(params, per_word, 1, report, stream);
        default:
          return launch<Word2>(params, per_word, 1, report, stream);
      }
    }
  }
  switch (element) {
    case 8:
      return launch<uint2>(params, 1, weight.col_stride, report, stream);
    case 4:
      return launch<uint32_t>(params, 1, weight.col_stride, report, stream);
    default:
      return launch<Word2>(params, 1, weight.col_stride, report, stream);
  }
}

}  // namespace

cudaError_t gather_rows(const GatherParams& params, IndexReport report, cudaStream_t stream) {
  if (cudaError_t error = detail::clear_status(report, stream); error != cudaSuccess) return error;
  if (params.indices.count == 0) return cudaSuccess;
  if (params.weight.cols == 0) {
    return check_indices(params.indices, params.weight.rows, report, stream);
  }
  return launch_for(params, report, stream);
}

}  // namespace unit_scaling::kernels::cuda
