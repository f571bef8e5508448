// The CUDA backend, registered under the CUDA dispatch key when the library is built with
// UNIT_SCALING_CUDA: its device functions run the framework-free kernels of src/kernels/cuda on
// the current stream; backends/entry_points.h wraps them in the operators' checks.
//
// Every device function validates the indices in the kernels that read them (IndexReport), as
// the index-check policy says (include/unit_scaling/index_check_policy.h):
//  - kDeviceAssert (default): nothing is read back, so no call synchronises the host. A bad
//    index stops the device with an assertion; the max_norm renorm reads the status word of the
//    check launched before it and writes no row when that found a bad index.
//  - kRaise: each operator reads its 8-byte status word back once, after its kernels (the renorm
//    kernel still writes nothing after a failed check), and throws the IndexError that names
//    the value and its position, before the entry point bumps any version. While the stream
//    captures a CUDA graph nothing can be read back: kDeviceAssert applies there.
// The backward's variant (kernels/cuda/backward_variant.h: same bits, other kernels) comes from
// the environment variable UNIT_SCALING_BACKWARD_VARIANT, read on each backward call so that one
// process can time them all; unset or empty: baseline; another name: ValueError. The variants
// that zero the gradient on a side stream (side_zero, all) get it here: a stream of c10's pool
// on the gradient's device and two events. No recordStream: the side stream touches only
// grad_weight, allocated on the current stream, which waits for the side stream's join before
// its next kernel, so any reuse of that memory is ordered after the zeros (recording would hold
// the block on the pool stream, and under capture until the capture ends).
#include <ATen/ATen.h>
#include <c10/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cstdlib>
#include <optional>
#include <string>

#include "backends/entry_points.h"
#include "backends/kernel_arguments.h"
#include "embedding_checks.h"
#include "kernels/cuda/embedding_kernels_cuda.h"
#include "kernels/messages.h"
#include "lookup_shape.h"
#include "unit_scaling/index_check_policy.h"

namespace unit_scaling::detail {
namespace {

namespace cuda_kernels = kernels::cuda;

constexpr const char* kBackwardVariantVariable = "UNIT_SCALING_BACKWARD_VARIANT";

// The backward variant the environment asks for now (one getenv per backward call).
cuda_kernels::BackwardVariant backward_variant() {
  const char* value = std::getenv(kBackwardVariantVariable);
  const std::string name = value == nullptr ? "" : value;
  const std::optional<cuda_kernels::BackwardVariant> variant =
      cuda_kernels::parse_backward_variant(name);
  TORCH_CHECK_VALUE(variant.has_value(), kernels::message_prefix(), "environment variable ",
                    kBackwardVariantVariable, "='", name,
                    "' is not a backward variant; valid: ", cuda_kernels::backward_variant_names());
  return *variant;
}

bool capturing(cudaStream_t stream) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  C10_CUDA_CHECK(cudaStreamIsCapturing(stream, &status));
  return status != cudaStreamCaptureStatusNone;
}

// How one operator call reports a bad index: through a device status word that it reads back
// (kRaise outside graph capture), or with a device-side assertion.
class Report {
 public:
  // `guard_writes`: the call needs the status word on the device even when it does not read it
  // back (the renorm kernel skips its writes when the check before it failed).
  Report(const at::Tensor& like, cudaStream_t stream, bool guard_writes = false)
      : read_back_(index_check_policy() == IndexCheckPolicy::kRaise && !capturing(stream)) {
    if (read_back_ || guard_writes) status_ = at::empty({1}, like.options().dtype(at::kLong));
  }

  // The kernels' report: record into the status word (if any); trap unless reading back.
  cuda_kernels::IndexReport kernel_report() const {
    auto* word = status_.defined()
                     ? reinterpret_cast<unsigned long long*>(status_.mutable_data_ptr<int64_t>())
                     : nullptr;
    return {word, !read_back_};
  }

  // kRaise: one read back of 8 bytes, and the IndexError for a recorded bad index.
  void throw_if_bad(const at::Tensor& indices, int64_t num_rows) const {
    if (!read_back_) return;
    const auto word = static_cast<unsigned long long>(status_.item<int64_t>());
    throw_if_bad_index(indices, cuda_kernels::bad_position(word, indices.numel()), num_rows);
  }

  bool reads_back() const { return read_back_; }

 private:
  bool read_back_;
  at::Tensor status_;  // one int64 on the device, or undefined
};

struct CudaBackend {
  static constexpr bool kChecksIndices = true;

  static at::Tensor gather(const at::Tensor& weight, const at::Tensor& indices) {
    const c10::cuda::CUDAGuard device(weight.device());
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    at::Tensor out = at::empty(lookup_shape(indices.sizes(), weight.size(1)), weight.options());
    const Report report(indices, stream);
    C10_CUDA_CHECK(cuda_kernels::gather_rows(gather_params(weight, indices, out),
                                             report.kernel_report(), stream));
    report.throw_if_bad(indices, weight.size(0));
    return out;
  }

  static at::Tensor scaled_backward(const at::Tensor& grad_output, const at::Tensor& indices,
                                    int64_t num_weights, int64_t padding_row, double scale) {
    const cuda_kernels::BackwardVariant variant = backward_variant();
    const c10::cuda::CUDAGuard device(grad_output.device());
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    const at::Tensor grad = grad_output.contiguous();
    const int64_t dim = grad.size(-1);
    const Report report(indices, stream);
    if (report.reads_back()) {  // the backward's own kernels assert; check and raise first
      C10_CUDA_CHECK(cuda_kernels::check_indices(index_array(indices), num_weights,
                                                 report.kernel_report(), stream));
      report.throw_if_bad(indices, num_weights);
    }
    at::Tensor grad_weight = at::empty({num_weights, dim}, grad.options());
    const kernels::BackwardParams params =
        backward_params(grad, indices, padding_row, scale, grad_weight);
    const size_t bytes = cuda_kernels::backward_workspace_bytes(params, variant);
    at::Tensor workspace =
        at::empty({static_cast<int64_t>(bytes)}, grad.options().dtype(at::kByte));
    if (!cuda_kernels::backward_uses_side_stream(params, variant)) {
      C10_CUDA_CHECK(cuda_kernels::write_scaled_gradient(params, workspace.mutable_data_ptr(),
                                                         bytes, stream, variant));
      return grad_weight;
    }
    const c10::DeviceIndex index = grad.device().index();
    const c10::cuda::CUDAStream side =
        c10::cuda::getStreamFromPool(/*isHighPriority=*/false, index);
    c10::cuda::CUDAEvent fork;  // destroyed at return: CUDA frees an event once its work is done
    c10::cuda::CUDAEvent join;
    fork.create(index);
    join.create(index);
    C10_CUDA_CHECK(
        cuda_kernels::write_scaled_gradient(params, workspace.mutable_data_ptr(), bytes, stream,
                                            variant, {side.stream(), fork.event(), join.event()}));
    return grad_weight;
  }

  static void renorm_rows(const at::Tensor& weight, const at::Tensor& indices, double max_norm,
                          double norm_type) {
    const c10::cuda::CUDAGuard device(weight.device());
    const cudaStream_t stream = c10::cuda::getCurrentCUDAStream();
    const Report report(indices, stream, /*guard_writes=*/true);
    C10_CUDA_CHECK(cuda_kernels::check_indices(index_array(indices), weight.size(0),
                                               report.kernel_report(), stream));
    const kernels::RenormParams params = renorm_params(weight, indices, max_norm, norm_type);
    at::Tensor workspace =
        at::empty({static_cast<int64_t>(cuda_kernels::renorm_workspace_bytes(params))},
                  weight.options().dtype(at::kByte));
    C10_CUDA_CHECK(cuda_kernels::renorm_rows(params, report.kernel_report().status,
                                             workspace.mutable_data_ptr(), stream));
    report.throw_if_bad(indices, weight.size(0));
  }
};

}  // namespace
}  // namespace unit_scaling::detail

TORCH_LIBRARY_IMPL(unit_scaling, CUDA, m) {
  unit_scaling::detail::register_backend<unit_scaling::detail::CudaBackend>(m);
}
