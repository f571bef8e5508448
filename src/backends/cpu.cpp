// The CPU backend, registered under the CPU dispatch key: its device functions run the
// framework-free kernels of src/kernels on raw pointers; backends/entry_points.h wraps them in
// the operators' checks. Outputs of 32 MiB and more are huge-page backed.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "backends/cpu_executor.h"
#include "backends/entry_points.h"
#include "backends/kernel_arguments.h"
#include "embedding_checks.h"
#include "huge_page_allocation.h"
#include "kernels/embedding_kernels.h"
#include "lookup_shape.h"

namespace unit_scaling::detail {
namespace {

struct CpuBackend {
  // The entry points check the indices (first_bad_index), before anything sized by V is
  // allocated; the kernels trust them.
  static constexpr bool kChecksIndices = false;

  // Branch-free blocks over the indices (kernels/index_checks.cpp): vectorised.
  static int64_t first_bad_index(const at::Tensor& indices, int64_t num_rows) {
    return kernels::find_first_invalid_index(index_array(indices), num_rows);
  }

  static at::Tensor gather(const at::Tensor& weight, const at::Tensor& indices) {
    at::Tensor out = empty_output(lookup_shape(indices.sizes(), weight.size(1)), weight.options());
    kernels::gather_rows(gather_params(weight, indices, out), aten_executor());
    return out;
  }

  // Allocates the gradient, then (in the kernel) the counting sort's V + 1 counters (none for a
  // zero-width gradient), after the entry point has checked the indices.
  static at::Tensor scaled_backward(const at::Tensor& grad_output, const at::Tensor& indices,
                                    int64_t num_weights, int64_t padding_row, double scale) {
    const int64_t dim = grad_output.size(-1);
    at::Tensor grad_weight = empty_output({num_weights, dim}, grad_output.options());
    if (dim == 0) return grad_weight;
    const at::Tensor grad = grad_output.contiguous();
    kernels::write_scaled_gradient(backward_params(grad, indices, padding_row, scale, grad_weight),
                                   aten_executor());
    return grad_weight;
  }

  static void renorm_rows(const at::Tensor& weight, const at::Tensor& indices, double max_norm,
                          double norm_type) {
    kernels::renorm_rows(renorm_params(weight, indices, max_norm, norm_type), aten_executor());
  }
};

}  // namespace
}  // namespace unit_scaling::detail

TORCH_LIBRARY_IMPL(unit_scaling, CPU, m) {
  unit_scaling::detail::register_backend<unit_scaling::detail::CpuBackend>(m);
}
