// max_norm on the device: the in-place renorm of the distinct referenced rows.
//
// Math (kernels/p_norm.h, shared with the CPU kernel): for each distinct referenced row x,
// norm = (sum_c |x_c|^p)^(1/p) (p = inf: max_c |x_c|, NaN wins), accumulated in float32 (float64
// for double) in ascending column order -- the CPU kernel's order (kernels/renorm.cpp), so the
// two give the same bits; a row with norm > max_norm is multiplied by max_norm / (norm + 1e-7),
// computed in double and rounded to the accumulation type.
// One warp per lookup position. Lane 0 claims the row (atomicCAS on a per-row flag), so each
// distinct row is processed exactly once whatever the scheduling. The lanes load 32 consecutive
// columns at a time (coalesced) and compute their terms |x_c|^p in parallel; the terms are then
// broadcast one by one (__shfl_sync) and every lane adds them in column order, so every lane
// holds the same, CPU-ordered total without a final broadcast. The rescale is lane-parallel.
// Memory traffic: each distinct referenced row is read once and, if too long, written once;
// plus N index reads and V flags cleared (one memset).
// The kernel first reads the status word of the check_indices launched before it and returns
// at once when a bad index was found: then no row is written at all.
#include <cmath>

#include "kernels/cuda/index_report.cuh"
#include "kernels/element.h"
#include "kernels/p_norm.h"

namespace unit_scaling::kernels::cuda {
namespace {

using detail::kWarp;
using kernels::detail::Element;

template <typename T, typename Index>
__global__ void __launch_bounds__(detail::kThreads)
    renorm_kernel(T* __restrict__ weight, int64_t cols, int64_t row_stride, int64_t col_stride,
                  const Index* __restrict__ indices, int64_t count, double max_norm,
                  double norm_type, const unsigned long long* __restrict__ status,
                  int* __restrict__ claimed) {
  using Acc = typename Element<T>::Acc;
  if (status != nullptr && *status != 0) return;
  const int lane = static_cast<int>(threadIdx.x % kWarp);
  const int64_t warps = int64_t{gridDim.x} * (blockDim.x / kWarp);
  const bool is_inf = isinf(norm_type);
  const auto p = static_cast<Acc>(norm_type);
  for (int64_t position = detail::first_item() / kWarp; position < count; position += warps) {
    const int64_t row = indices[position];
    int first = 0;
    if (lane == 0) first = atomicCAS(&claimed[row], 0, 1) == 0;
    if (!__shfl_sync(0xFFFFFFFFu, first, 0)) continue;
    T* values = weight + row * row_stride;
    Acc total = 0;
    for (int64_t base = 0; base < cols; base += kWarp) {
      Acc term = 0;
      if (base + lane < cols) {
        const Acc a = p_norm::absolute(Element<T>::load(values[(base + lane) * col_stride]));
        term = p_norm::term(a, is_inf, norm_type, p);
      }
      const int terms = static_cast<int>(min(int64_t{kWarp}, cols - base));
      for (int k = 0; k < terms; ++k) {  // the same on every lane: no divergence
        total = p_norm::add(total, __shfl_sync(0xFFFFFFFFu, term, k), is_inf);
      }
    }
    const auto norm = static_cast<double>(p_norm::root(total, is_inf, norm_type));
    if (!p_norm::exceeds(norm, max_norm)) continue;
    const auto factor = p_norm::rescale_factor<Acc>(norm, max_norm);
    for (int64_t c = lane; c < cols; c += kWarp) {
      T& x = values[c * col_stride];
      x = Element<T>::store(Element<T>::load(x) * factor);
    }
  }
}

}  // namespace

size_t renorm_workspace_bytes(const RenormParams& params) {
  return static_cast<size_t>(params.weight.rows) * sizeof(int);
}

cudaError_t renorm_rows(const RenormParams& params, const unsigned long long* status,
                        void* workspace, cudaStream_t stream) {
  const MutableMatrix& weight = params.weight;
  const IndexArray& indices = params.indices;
  // Nothing to do, and no zero-byte memset: no lookups, zero-width rows (norm 0), no rows (then
  // every index is bad and the kernel would write nothing), or max_norm = inf.
  if (indices.count == 0 || weight.cols == 0 || weight.rows == 0 || std::isinf(params.max_norm)) {
    return cudaSuccess;
  }
  auto* claimed = static_cast<int*>(workspace);
  if (cudaError_t error = cudaMemsetAsync(claimed, 0, renorm_workspace_bytes(params), stream);
      error != cudaSuccess) {
    return error;
  }
  const unsigned blocks = detail::blocks_for(indices.count * kWarp);
  kernels::detail::with_dtype(params.dtype, [&](auto tag) {
    using T = typename decltype(tag)::type;
    auto* table = static_cast<T*>(weight.data);
    kernels::detail::with_index_type(indices.type, [&](auto index_tag) {
      using Index = typename decltype(index_tag)::type;
      UNIT_SCALING_LAUNCH(blocks, detail::kThreads, detail::kThreads, stream,
                          renorm_kernel<T, Index>)
      (table, weight.cols, weight.row_stride, weight.col_stride,
       static_cast<const Index*>(indices.data), indices.count, params.max_norm, params.norm_type,
       status, claimed);
    });
  });
  return cudaGetLastError();
}

}  // namespace unit_scaling::kernels::cuda
