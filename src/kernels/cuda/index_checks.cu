// Index validation on the device (see IndexReport): one read of the indices, no host sync.
#include "kernels/cuda/index_report.cuh"

namespace unit_scaling::kernels::cuda {
namespace {

template <typename Index>
__global__ void __launch_bounds__(detail::kThreads)
    check_indices_kernel(const Index* indices, int64_t count, int64_t num_rows,
                         IndexReport report) {
  for (int64_t p = detail::first_item(); p < count; p += detail::stride()) {
    const int64_t value = indices[p];
    if (!detail::index_valid(value, num_rows)) {
      detail::report_bad_index(report, count, p, value, num_rows);
    }
  }
}

}  // namespace

cudaError_t check_indices(IndexArray indices, int64_t num_rows, IndexReport report,
                          cudaStream_t stream) {
  if (cudaError_t error = detail::clear_status(report, stream); error != cudaSuccess) return error;
  if (indices.count == 0) return cudaSuccess;
  const unsigned blocks = detail::blocks_for(indices.count);
  if (indices.type == IndexType::kInt32) {
    UNIT_SCALING_LAUNCH(blocks, detail::kThreads, detail::kThreads, stream,
                        check_indices_kernel<int32_t>)
    (static_cast<const int32_t*>(indices.data), indices.count, num_rows, report);
  } else {
    UNIT_SCALING_LAUNCH(blocks, detail::kThreads, detail::kThreads, stream,
                        check_indices_kernel<int64_t>)
    (static_cast<const int64_t*>(indices.data), indices.count, num_rows, report);
  }
  return cudaGetLastError();
}

}  // namespace unit_scaling::kernels::cuda
