// Framework-free CUDA kernels of unit-scaled embedding: each operator's kernel takes its
// parameter struct (kernels/kernel_params.h, shared with the CPU kernels: raw device pointers,
// sizes and strides in elements), what only the device needs (index report, workspace) and the
// stream to run on. The LibTorch glue
// (backends/cuda.cpp) validates every argument but the index values, allocates outputs and
// workspaces, and turns returned CUDA errors into exceptions. Nothing here synchronises the
// host; every function only enqueues work on `stream`, so all of it can be captured in a CUDA
// graph. One file per concept: index_report.cuh, gather.cu, renorm.cu, backward.cu (its host-side
// plan: backward_plan.h; its variants: backward_variant.h; its kernels: backward_*.cuh).
#pragma once

#ifndef UNIT_SCALING_CUDA_EMULATION  // host emulation in the tests: its own types
#include <cuda_runtime_api.h>
#endif

#include <cstddef>
#include <cstdint>

#include "kernels/cuda/backward_variant.h"
#include "kernels/kernel_params.h"
#include "kernels/kernel_types.h"

namespace unit_scaling::kernels::cuda {

// How the kernels that read indices report one outside [0, num_rows) without a host sync.
//  - status (device memory, one 64-bit word; may be null): the kernel zeroes nothing itself;
//    the launcher clears it, and each bad position p records count - p with an atomic max, so
//    afterwards it holds count - (the first bad position), or 0 when every index is valid.
//    The caller reads it back once, after the kernel (bad_position() decodes it).
//  - trap: also stop the device with an assertion that prints the index, its position and
//    num_rows. For callers that cannot read anything back (a CUDA graph being captured, the
//    backward that must not synchronise); the CUDA context is unusable afterwards, as after
//    ATen's own device-side index assertions.
struct IndexReport {
  unsigned long long* status;
  bool trap;
};

// The first bad position recorded in a status word read back to the host, or -1.
inline int64_t bad_position(unsigned long long status, int64_t count) {
  return status == 0 ? -1 : count - static_cast<int64_t>(status);
}

// Reports every index outside [0, num_rows) (clears report.status first).
cudaError_t check_indices(IndexArray indices, int64_t num_rows, IndexReport report,
                          cudaStream_t stream);

// The lookup (GatherParams): out[p, :] = weight[indices[p], :]. Rows of bad indices are written
// as zeros and reported (report.status cleared first).
cudaError_t gather_rows(const GatherParams& params, IndexReport report, cudaStream_t stream);

// Device workspace that renorm_rows needs: one flag per row of the table.
size_t renorm_workspace_bytes(const RenormParams& params);

// max_norm in place (RenormParams): every distinct referenced row whose p-norm (accumulated in
// float32, float64 for double; p = inf: max-abs; kernels/p_norm.h) exceeds max_norm is
// multiplied by max_norm / (norm + 1e-7), once. Does nothing at all when *status != 0, i.e. when
// the check_indices launched before it on `stream` found a bad index: no row is written then.
// workspace: renorm_workspace_bytes(params) bytes.
cudaError_t renorm_rows(const RenormParams& params, const unsigned long long* status,
                        void* workspace, cudaStream_t stream);

// The backward's variants (backward_variant.h) change its kernels and speed, never its bits.
// Each function below takes the variant; the default is the baseline.
//
// A second stream of the same device and two events (created; timing may be disabled), for the
// variants that zero the gradient beside the sort (side_zero, all: backward_uses_side_stream).
// The backward records `fork` on its own stream and makes the side stream (`stream` below) wait
// for it, zeroes grad_weight on the side stream, records `join` there, and makes its own stream
// wait for `join` before step C: capturable (the side stream joins the capture through `fork`
// and leaves it through `join`). Every later use of grad_weight on the backward's stream is
// ordered after the zeros, so its allocator needs no recordStream.
struct SideStream {
  cudaStream_t stream = nullptr;
  cudaEvent_t fork = nullptr;
  cudaEvent_t join = nullptr;
};

// Device workspace that write_scaled_gradient needs for the shapes of `params` (dtype,
// indices.count, num_rows, dim; the pointers are not read): O(N) sort keys plus the window
// slots, at most max(32 MiB, 8 acc ceil(N / 32)) bytes (backward_plan.h states the exact layout);
// the same for every variant.
size_t backward_workspace_bytes(const BackwardParams& params,
                                BackwardVariant variant = BackwardVariant::kBaseline);

// How many stream operations write_scaled_gradient enqueues for the shapes of `params`: kernel
// launches, memsets and CUB's launches, on its stream and the side stream -- the nodes of a
// captured CUDA graph; a number fixed on the host, e.g. 4 at GPT-2 (N = 8192), 5 with side_zero.
// Not counted: the side stream's 4 event operations (fork and join, a record and a wait each),
// which a captured graph turns into edges.
int64_t backward_stream_operations(const BackwardParams& params,
                                   BackwardVariant variant = BackwardVariant::kBaseline);

// Whether write_scaled_gradient needs a SideStream for these shapes and variant (side_zero and
// all, except for shapes with nothing to sum).
bool backward_uses_side_stream(const BackwardParams& params, BackwardVariant variant);

// The unit-scaled weight gradient (BackwardParams), written in full (num_rows x dim, contiguous):
//   grad_weight[r, :] = round(scale * sum_{p : indices[p] == r, r != padding_row} grad_out[p, :])
// Deterministic and equal to the CPU kernel bit for bit: positions are sorted by row (stably)
// and each row is summed in the order of kernels/summation_order.h in float32 (float64 for
// double), scaled once and rounded once; rows nobody looked up are written as zeros. A bad index
// stops the device with an assertion (no host sync). workspace: backward_workspace_bytes(params)
// bytes, 256-byte aligned (cudaErrorInvalidValue when workspace_bytes is less, or when the
// variant uses a side stream and `side` lacks one).
cudaError_t write_scaled_gradient(const BackwardParams& params, void* workspace,
                                  size_t workspace_bytes, cudaStream_t stream,
                                  BackwardVariant variant = BackwardVariant::kBaseline,
                                  const SideStream& side = {});

}  // namespace unit_scaling::kernels::cuda
