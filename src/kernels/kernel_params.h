// The parameters of the kernel entry points, one plain struct per operator, shared by the CPU
// kernels (embedding_kernels.h) and the CUDA kernels (cuda/embedding_kernels_cuda.h): pointers,
// sizes and strides (counted in elements, kernel_types.h) and options. What only one device
// needs (the CPU's Executor; the CUDA stream, workspace and index report) is passed beside the
// struct. The LibTorch glue fills each struct in one helper (backends/kernel_arguments.h) after
// validating everything but the index values; the kernels trust the fields. The structs are
// small and trivially copyable: the kernels' entry points (host functions) take them by
// reference, and the CUDA launchers pass the fields each __global__ kernel needs.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kernels/kernel_types.h"

namespace unit_scaling::kernels {

// The forward lookup: out[p, :] = weight[indices[p], :] for p < indices.count.
struct GatherParams {
  // The table, V x D, any strides. Read only.
  ConstMatrix weight;
  // Bytes of one element of the table: the gather moves bytes unchanged, so the element size is
  // all it needs of the dtype.
  size_t element_bytes;
  // The N lookups. The CPU kernel needs them in [0, V); the CUDA kernel reports the others.
  IndexArray indices;
  // N x D, contiguous, written in full.
  void* out;
};

// The unit-scaled weight gradient, written in full:
//   grad_weight[r, :] = round(scale * sum_{p : indices[p] == r, r != padding_row} grad_out[p, :])
struct BackwardParams {
  // Storage format of grad_out and grad_weight.
  DType dtype;
  // The N lookups of the forward. The CPU kernel needs them in [0, num_rows); the CUDA kernel
  // stops the device with an assertion on any other.
  IndexArray indices;
  // V: rows of grad_weight.
  int64_t num_rows;
  // The row whose lookups contribute nothing; < 0: none.
  int64_t padding_row;
  // N x dim, contiguous. Read only.
  const void* grad_out;
  // D: columns of grad_out and grad_weight.
  int64_t dim;
  // The unit scale s, applied once per output element after the sum (rounded to the
  // accumulation type first: float32, or float64 for double tables).
  double scale;
  // V x dim, contiguous, written in full (may be uninitialised).
  void* grad_weight;
};

// max_norm in place: every distinct referenced row x with p-norm > max_norm is multiplied by
// max_norm / (norm + 1e-7), once (the torch.embedding_renorm_ rule; p_norm.h holds the math).
struct RenormParams {
  // Storage format of the table.
  DType dtype;
  // The table, V x D, any strides. Referenced rows are rewritten in place.
  MutableMatrix weight;
  // The N lookups; each distinct row among them is renormalised once. The CPU kernel needs them
  // in [0, V); the CUDA kernel relies on the status word of the check before it.
  IndexArray indices;
  // The largest p-norm a row may keep; +inf: no row changes.
  double max_norm;
  // p of the p-norm, > 0; +inf gives the max-abs norm.
  double norm_type;
};

static_assert(sizeof(GatherParams) <= 128 && sizeof(BackwardParams) <= 128 &&
              sizeof(RenormParams) <= 128);

}  // namespace unit_scaling::kernels
