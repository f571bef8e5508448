// max_norm on the device: the in-place renorm of the distinct referenced rows.
//
// Math: for each distinct referenced row x, norm = (sum_c |x_c|^p)^(1/p) (p = inf: max_c |x_c|,
// NaN wins), accumulated in float32 (float64 for double) in ascending column order -- the
// CPU kernel's order (kernels/renorm.cpp), so the two give the same bits; a row with
// norm > max_norm is multiplied by max_norm / (norm + 1e-7), computed in double and rounded to
// the accumulation type.
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

namespace unit_scaling::kernels::cuda {
namespace {

using detail::kWarp;
using kernels::detail::Element;

__device__ __forceinline__ float absolute(float a) { return fabsf(a); }
__device__ __forceinline__ double absolute(double a) { return fabs(a); }
__device__ __forceinline__ float power(float a, float p) { return powf(a, p); }
__device__ __forceinline__ double power(double a, double p) { return pow(a, p); }
__device__ __forceinline__ float square_root(float a) { return sqrtf(a); }
__device__ __forceinline__ double square_root(double a) { return sqrt(a); }

template <typename T, typename Index>
__global__ void renorm_kernel(T* __restrict__ weight, int64_t cols, int64_t row_stride,
                              int64_t col_stride, const Index* __restrict__ indices, int64_t count,
                              double max_norm, double norm_type,
                              const unsigned long long* __restrict__ status,
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
        const Acc a = absolute(Element<T>::load(values[(base + lane) * col_stride]));
        term = is_inf ? a : norm_type == 1.0 ? a : norm_type == 2.0 ? a * a : power(a, p);
      }
      const int terms = static_cast<int>(min(int64_t{kWarp}, cols - base));
      for (int k = 0; k < terms; ++k) {  // the same on every lane: no divergence
        const Acc t = __shfl_sync(0xFFFFFFFFu, term, k);
        if (!is_inf) {
          total += t;
        } else if (!(t <= total) && !isnan(total)) {  // NaN wins, and stays
          total = t;
        }
      }
    }
    Acc norm = total;
    if (!is_inf && norm_type == 2.0) norm = square_root(total);
    if (!is_inf && norm_type != 1.0 && norm_type != 2.0) {
      norm = power(total, static_cast<Acc>(1.0 / norm_type));
    }
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
  // Nothing to do, and no zero-byte memset: no lookups, zero-width rows (norm 0), no rows (then
  // every index is bad and the kernel would write nothing), or max_norm = inf.
  if (indices.count == 0 || weight.cols == 0 || weight.rows == 0 || std::isinf(max_norm)) {
    return cudaSuccess;
  }
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
      (table, weight.cols, weight.row_stride, weight.col_stride,
       static_cast<const Index*>(indices.data), indices.count, max_norm, norm_type, status,
       claimed);
    });
  });
  return cudaGetLastError();
}

}  // namespace unit_scaling::kernels::cuda
