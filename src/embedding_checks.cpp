#include "embedding_checks.h"

#include <ATen/ATen.h>
#include <ATen/MemoryOverlap.h>
#include <c10/util/Exception.h>

#include <cmath>
#include <limits>
#include <sstream>

#include "aten_bridge.h"

namespace unit_scaling::detail {
namespace {

constexpr const char* kOp = "unit_scaling embedding: ";

bool is_supported_weight_dtype(at::ScalarType type) {
  return type == at::kFloat || type == at::kDouble || type == at::kHalf || type == at::kBFloat16;
}

// "input[1, 3]" for flat position 7 of a 2 x 4 input; "input" for a 0-d input.
std::string describe_position(at::IntArrayRef shape, int64_t flat) {
  if (shape.empty()) return "input";
  std::vector<int64_t> coords(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    coords[d] = flat % shape[d];
    flat /= shape[d];
  }
  std::ostringstream out;
  out << "input[";
  for (size_t d = 0; d < coords.size(); ++d) out << (d ? ", " : "") << coords[d];
  out << "]";
  return out.str();
}

[[noreturn]] void throw_bad_index(int64_t value, at::IntArrayRef shape, int64_t flat,
                                  int64_t num_rows) {
  TORCH_CHECK_INDEX(false, kOp, "index ", value, " at ", describe_position(shape, flat),
                    " is out of range for weight with ", num_rows, " rows (V = ", num_rows,
                    "); every index must satisfy 0 <= index < ", num_rows);
  std::abort();  // unreachable: TORCH_CHECK_INDEX(false, ...) always throws
}

}  // namespace

int64_t check_settings(const EmbeddingSettings& settings, int64_t num_rows) {
  TORCH_CHECK_VALUE(!settings.scale_grad_by_freq, kOp,
                    "scale_grad_by_freq=True is not supported by unit scaling");
  TORCH_CHECK_VALUE(!settings.sparse, kOp, "sparse=True is not supported by unit scaling");
  // `!(x > 0)` also rejects NaN.
  TORCH_CHECK_VALUE(!settings.max_norm || *settings.max_norm > 0, kOp,
                    "max_norm must be > 0 (inf allowed), got max_norm=", *settings.max_norm);
  TORCH_CHECK_VALUE(settings.norm_type > 0, kOp,
                    "norm_type must be > 0 (inf allowed), got norm_type=", settings.norm_type);
  if (!settings.padding_idx) return -1;
  const int64_t padding_idx = *settings.padding_idx;
  TORCH_CHECK_VALUE(padding_idx >= -num_rows && padding_idx < num_rows, kOp,
                    "padding_idx=", padding_idx, " is out of range for weight with ", num_rows,
                    " rows; expected ", -num_rows, " <= padding_idx < ", num_rows);
  return padding_idx < 0 ? padding_idx + num_rows : padding_idx;
}

int64_t check_embedding_arguments(const at::Tensor& input, const at::Tensor& weight,
                                  const EmbeddingSettings& settings) {
  TORCH_CHECK_TYPE(input.defined(), kOp, "input is an undefined tensor");
  TORCH_CHECK_TYPE(weight.defined(), kOp, "weight is an undefined tensor");
  TORCH_CHECK_TYPE(input.layout() == at::kStrided, kOp,
                   "input must be a dense (strided) tensor, got layout ", input.layout());
  TORCH_CHECK_TYPE(weight.layout() == at::kStrided, kOp,
                   "weight must be a dense (strided) tensor, got layout ", weight.layout());
  TORCH_CHECK_TYPE(input.scalar_type() == at::kLong || input.scalar_type() == at::kInt, kOp,
                   "input must hold int64 or int32 indices, got input of dtype ",
                   input.scalar_type());
  TORCH_CHECK_TYPE(is_supported_weight_dtype(weight.scalar_type()), kOp,
                   "weight must be float32, float64, float16 or bfloat16, got weight of dtype ",
                   weight.scalar_type());
  TORCH_CHECK_VALUE(weight.dim() == 2, kOp,
                    "weight must be 2-D (num_embeddings, embedding_dim), got weight of shape ",
                    weight.sizes());
  TORCH_CHECK_VALUE(input.device() == weight.device(), kOp, "input is on ", input.device(),
                    " but weight is on ", weight.device(), "; both must be on the same device");
  const int64_t num_rows = weight.size(0);
  const int64_t padding_row = check_settings(settings, num_rows);
  const int64_t count = input.numel();
  const int64_t dim = weight.size(1);
  TORCH_CHECK_VALUE(count == 0 || dim <= std::numeric_limits<int64_t>::max() / count, kOp,
                    "the output would have ", count, " x ", dim,
                    " elements, which overflows int64 (input of shape ", input.sizes(), ")");
  if (settings.max_norm) {
    TORCH_CHECK_VALUE(at::has_internal_overlap(weight) != at::MemOverlap::Yes, kOp,
                      "max_norm renormalises weight in place, but weight (strides ",
                      weight.strides(), ") has several elements sharing memory");
  }
  return padding_row;
}

void check_indices_in_range(const at::Tensor& indices, int64_t num_rows) {
  const int64_t count = indices.numel();
  if (count == 0) return;
  if (indices.is_cpu()) {
    const auto type = kernel_index_type(indices.scalar_type());
    const int64_t bad =
        kernels::find_first_invalid_index(type, indices.const_data_ptr(), count, num_rows);
    if (bad >= 0) {
      throw_bad_index(kernels::index_at(type, indices.const_data_ptr(), bad), indices.sizes(), bad,
                      num_rows);
    }
    return;
  }
  // Other devices: one reduction on the device, then the first bad position if there is one.
  const at::Tensor flat = indices.reshape({-1});
  const at::Tensor bad = flat.lt(0).logical_or_(flat.ge(num_rows));
  if (!bad.any().item<bool>()) return;
  const int64_t position = bad.nonzero().select(1, 0)[0].item<int64_t>();
  throw_bad_index(flat[position].item<int64_t>(), indices.sizes(), position, num_rows);
}

}  // namespace unit_scaling::detail
