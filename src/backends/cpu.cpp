// The CPU backend, registered under the CPU dispatch key: its device functions run the
// framework-free kernels of src/kernels on raw pointers; backends/entry_points.h wraps them in
// the operators' checks. Outputs of 32 MiB and more are huge-page backed.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "aten_bridge.h"
#include "backends/entry_points.h"
#include "embedding_checks.h"
#include "huge_page_allocation.h"

namespace unit_scaling::detail {
namespace {

std::vector<int64_t> output_shape(const at::Tensor& indices, int64_t dim) {
  std::vector<int64_t> shape(indices.sizes().begin(), indices.sizes().end());
  shape.push_back(dim);
  return shape;
}

// Branch-free blocks over the indices (kernels/index_checks.cpp): vectorised, no device sync.
int64_t first_bad_index_cpu(const at::Tensor& indices, int64_t num_rows) {
  return kernels::find_first_invalid_index(index_array(indices), num_rows);
}

at::Tensor gather_cpu(const at::Tensor& weight, const at::Tensor& indices) {
  const int64_t dim = weight.size(1);
  at::Tensor out = empty_output(output_shape(indices, dim), weight.options());
  const kernels::ConstMatrix table{weight.const_data_ptr(), weight.size(0), dim, weight.stride(0),
                                   weight.stride(1)};
  kernels::gather_rows(weight.element_size(), table, index_array(indices), out.mutable_data_ptr(),
                       aten_executor());
  return out;
}

at::Tensor scaled_backward_cpu(const at::Tensor& grad_output, const at::Tensor& input,
                               int64_t num_weights, int64_t padding_row, double scale) {
  const at::Tensor indices = input.contiguous();
  // The counting sort reads every index once; it validates them in the same pass, before the
  // gradient is allocated or written.
  kernels::RowGroups groups;
  throw_if_bad_index(
      indices,
      kernels::group_positions_by_row(index_array(indices), num_weights, padding_row, groups),
      num_weights);
  const at::Tensor grad = grad_output.contiguous();
  const int64_t dim = grad_output.size(-1);
  at::Tensor grad_weight = empty_output({num_weights, dim}, grad_output.options());
  kernels::write_scaled_gradient(kernel_dtype(grad.scalar_type()), groups, grad.const_data_ptr(),
                                 dim, scale, grad_weight.mutable_data_ptr(), aten_executor());
  return grad_weight;
}

void renorm_rows_cpu(const at::Tensor& weight, const at::Tensor& indices, double max_norm,
                     double norm_type) {
  const std::vector<int64_t> rows = kernels::distinct_rows(index_array(indices), weight.size(0));
  const kernels::MutableMatrix table{weight.data_ptr(), weight.size(0), weight.size(1),
                                     weight.stride(0), weight.stride(1)};
  kernels::renorm_rows(kernel_dtype(weight.scalar_type()), table, rows, max_norm, norm_type,
                       aten_executor());
}

}  // namespace
}  // namespace unit_scaling::detail

TORCH_LIBRARY_IMPL(unit_scaling, CPU, m) {
  using namespace unit_scaling::detail;
  register_backend<&gather_cpu, &scaled_backward_cpu, &renorm_rows_cpu, &first_bad_index_cpu>(m);
}
