// The forward row gather on the device.
//
// Math: out[p, :] = weight[indices[p], :].
// Memory traffic: one read of N rows of D elements (scattered over the table) and one
// contiguous write of N x D elements, plus N index reads. The flat space of (position, word)
// pairs is spread over the threads, so neighbouring threads move neighbouring words of a row:
// loads and stores coalesce, and a row's index is read by all its threads from the same cache
// line. Words are 16 bytes when the row bytes, the row stride and the base address allow,
// else 8, 4 or 2; a table with a column stride other than 1 moves element by element.
#include "kernels/cuda/index_report.cuh"

namespace unit_scaling::kernels::cuda {
namespace {

// A 2-byte word (the element size of float16 / bfloat16).
struct Word2 {
  uint16_t bits;
};

// row_stride and col_stride in words; words_per_row words per output row. The pointers are the
// kernel's own restrict parameters (not fields of GatherParams): that is what lets the compiler
// load the table and the indices through the read-only path (ld.global.nc).
template <typename Word, typename Index>
__global__ void gather_kernel(const Word* __restrict__ weight, int64_t num_rows, int64_t row_stride,
                              int64_t col_stride, const Index* __restrict__ indices, int64_t count,
                              int64_t words_per_row, Word* __restrict__ out, IndexReport report) {
  const int64_t total = count * words_per_row;
  for (int64_t t = detail::first_item(); t < total; t += detail::stride()) {
    const int64_t position = t / words_per_row;
    const int64_t word = t - position * words_per_row;
    const int64_t row = indices[position];
    if (detail::index_valid(row, num_rows)) {
      out[t] = weight[row * row_stride + word * col_stride];
    } else {
      if (word == 0) detail::report_bad_index(report, count, position, row, num_rows);
      out[t] = Word{};
    }
  }
}

template <typename Word>
cudaError_t launch(const GatherParams& params, int64_t elements_per_word, int64_t col_stride,
                   IndexReport report, cudaStream_t stream) {
  const ConstMatrix& weight = params.weight;
  const int64_t words_per_row = weight.cols / elements_per_word;
  const int64_t row_stride = weight.row_stride / elements_per_word;
  const unsigned blocks = detail::blocks_for(params.indices.count * words_per_row);
  const auto* table = static_cast<const Word*>(weight.data);
  auto* target = static_cast<Word*>(params.out);
  const IndexArray& indices = params.indices;
  if (indices.type == IndexType::kInt32) {
    UNIT_SCALING_LAUNCH(blocks, detail::kThreads, stream, gather_kernel<Word, int32_t>)
    (table, weight.rows, row_stride, col_stride, static_cast<const int32_t*>(indices.data),
     indices.count, words_per_row, target, report);
  } else {
    UNIT_SCALING_LAUNCH(blocks, detail::kThreads, stream, gather_kernel<Word, int64_t>)
    (table, weight.rows, row_stride, col_stride, static_cast<const int64_t*>(indices.data),
     indices.count, words_per_row, target, report);
  }
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
