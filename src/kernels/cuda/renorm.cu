// max_norm on the device: the in-place renorm of the distinct referenced rows.
//
// One warp per lookup position. The first warp to reach a row claims it (an atomic flag per
// table row, so each distinct row is processed exactly once whatever the order) and computes
// its p-norm: each lane accumulates a strided share of the columns, then a butterfly shuffle
// combines the lanes in a fixed order, so the result does not depend on scheduling. A row whose
// norm exceeds max_norm is multiplied by max_norm / (norm + 1e-7), computed in double and
// rounded to the accumulation type, as the CPU kernel does.
// Memory traffic: each distinct referenced row is read once and, if too long, written once;
// plus N index reads and V flags cleared.
// The kernel first reads the status word of the check_indices launched before it and returns
// at once when a bad index was found: then no row is written at all.
#include <cmath>

#include "kernels/cuda/index_report.cuh"
#include "kernels/element.h"

namespace unit_scaling::kernels::cuda {
namespace {

using kernels::detail::Element;

constexpr int kWarp = 32;

// Combines two partial norms: the max for p = inf (NaN wins, as on the CPU), else the sum.
template <typename Acc>
__device__ __forceinline__ Acc combine(Acc a, Acc b, bool max_norm_kind) {
  if (!max_norm_kind) return a + b;
  if (isnan(a) || isnan(b)) return a + b;  // NaN
  return a > b ? a : b;
}

template <typename T, typename Index>
__global__ void renorm_kernel(T* __restrict__ weight, int64_t num_rows, int64_t cols,
                              int64_t row_stride, int64_t col_stride,
                              const Index* __restrict__ indices, int64_t count, double max_norm,
                              double norm_type, const unsigned long long* __restrict__ status,
                              int* __restrict__ claimed) {
  using Acc = typename Element<T>::Acc;
  if (*status != 0) return;
  const int lane = threadIdx.x % kWarp;
  const int64_t warps = int64_t{gridDim.x} * (blockDim.x / kWarp);
  const bool is_inf = isinf(norm_type);
  const auto p = static_cast<Acc>(norm_type);
  for (int64_t position = (int64_t{blockIdx.x} * blockDim.x + threadIdx.x) / kWarp;
       position < count; position += warps) {
    const int64_t row = indices[position];
    int first = 0;
    if (lane == 0) first = atomicCAS(&claimed[row], 0, 1) == 0;
    if (!__shfl_sync(0xFFFFFFFFu, first, 0)) continue;
    T* values = weight + row * row_stride;
    Acc total = 0;
    for (int64_t c = lane; c < cols; c += kWarp) {
      const Acc a = fabs(Element<T>::load(values[c * col_stride]));
      const Acc term = is_inf ? a : norm_type == 1.0 ? a : norm_type == 2.0 ? a * a : pow(a, p);
      total = combine(total, term, is_inf);
    }
    for (int offset = kWarp / 2; offset > 0; offset /= 2) {
      total = combine(total, __shfl_xor_sync(0xFFFFFFFFu, total, offset), is_inf);
    }
    Acc norm = total;
    if (!is_inf && norm_type == 2.0) norm = sqrt(total);
    if (!is_inf && norm_type != 1.0 && norm_type != 2.0)
      norm = pow(total, static_cast<Acc>(1.0 / norm_type));
    if (!(static_cast<double>(norm) > max_norm)) continue;
    const auto factor = static_cast<Acc>(max_norm / (static_cast<double>(norm) + 1e-7));
    for (int64_t c = lane; c < cols; c += kWarp) {
      T& x = values[c * col_stride];
      x = Element<T>::store(Element<T>::load(x) * factor);
    }
  }
}

}  // namespace

size_t renorm_workspace_bytes(int64_t num_rows) {
  return static_cast<size_t>(num_rows) * sizeof(int);
}

cudaError_t renorm_rows(DType dtype, MutableMatrix weight, IndexArray indices, double max_norm,
                        double norm_type, const unsigned long long* status, void* workspace,
                        cudaStream_t stream) {
  if (indices.count == 0 || weight.cols == 0 || std::isinf(max_norm)) return cudaSuccess;
  auto* claimed = static_cast<int*>(workspace);
  if (cudaError_t error = cudaMemsetAsync(claimed, 0, renorm_workspace_bytes(weight.rows), stream);
      error != cudaSuccess) {
    return error;
  }
  const unsigned blocks = detail::blocks_for(indices.count * kWarp);
  kernels::detail::with_dtype(dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    auto* table = static_cast<T*>(weight.data);
    kernels::detail::with_index_type(indices.type, [&](auto index_tag) {
      using Index = typename decltype(index_tag)::type;
      UNIT_SCALING_LAUNCH(blocks, detail::kThreads, stream, renorm_kernel<T, Index>)
      (table, weight.rows, weight.cols, weight.row_stride, weight.col_stride,
       static_cast<const Index*>(indices.data), indices.count, max_norm, norm_type, status,
       claimed);
    });
  });
  return cudaGetLastError();
}

}  // namespace unit_scaling::kernels::cuda
