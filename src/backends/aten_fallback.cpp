// The fallback backend for every device without kernels of its own: the same contract built
// from ATen operators, registered under CompositeExplicitAutograd (a device with its own
// backend file registers under its dispatch key, which takes precedence). The entry points
// check the indices first with one reduction on the device (one read back); the gradient is
// accumulated in float32 (float64) by embedding_dense_backward, scaled once and rounded once.
// The tests reach it on CPU tensors too (tests/cpp/backends.h, tests/python/backend_axis.py).
#include <ATen/ATen.h>
#include <torch/library.h>

#include "backends/entry_points.h"
#include "dtypes.h"
#include "lookup_shape.h"

namespace unit_scaling::detail {
namespace {

struct AtenFallback {
  static constexpr bool kChecksIndices = false;

  // One reduction on the tensor's device and one read back: the smallest bad position, or
  // numel when there is none.
  static int64_t first_bad_index(const at::Tensor& indices, int64_t num_rows) {
    const int64_t count = indices.numel();
    if (count == 0) return -1;
    const at::Tensor flat = indices.reshape({-1});
    const at::Tensor bad = flat.lt(0).logical_or_(flat.ge(num_rows));
    const at::Tensor positions = at::arange(count, flat.options().dtype(at::kLong));
    const int64_t first = positions.masked_fill_(bad.logical_not(), count).min().item<int64_t>();
    return first == count ? -1 : first;
  }

  static at::Tensor gather(const at::Tensor& weight, const at::Tensor& indices) {
    return weight.index_select(0, indices.reshape({-1}))
        .view(lookup_shape(indices.sizes(), weight.size(1)));
  }

  static at::Tensor scaled_backward(const at::Tensor& grad_output, const at::Tensor& indices,
                                    int64_t num_weights, int64_t padding_row, double scale) {
    const int64_t count = indices.numel();
    const int64_t dim = grad_output.size(-1);
    const auto acc_type = accumulation_type(grad_output.scalar_type());
    at::Tensor sum = at::embedding_dense_backward(grad_output.reshape({count, dim}).to(acc_type),
                                                  indices.reshape({-1}), num_weights, padding_row,
                                                  /*scale_grad_by_freq=*/false);
    return sum.mul_(scale).to(grad_output.scalar_type());
  }

  static void renorm_rows(const at::Tensor& weight, const at::Tensor& indices, double max_norm,
                          double norm_type) {
    at::Tensor target = weight;  // embedding_renorm_ takes a mutable reference
    at::embedding_renorm_(target, indices.reshape({-1}), max_norm, norm_type);
  }
};

}  // namespace
}  // namespace unit_scaling::detail

TORCH_LIBRARY_IMPL(unit_scaling, CompositeExplicitAutograd, m) {
  unit_scaling::detail::register_backend<unit_scaling::detail::AtenFallback>(m);
}
