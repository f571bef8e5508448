#include "embedding_checks.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "dtypes.h"
#include "kernels/messages.h"
#include "unit_scale.h"

namespace unit_scaling::detail {
namespace {

std::string prefix() { return kernels::message_prefix(); }

bool is_supported_weight_dtype(at::ScalarType type) { return kernel_dtype(type).has_value(); }

// "[1, 3]" for flat position 7 of a 2 x 4 input; "" for a 0-d input.
std::string describe_position(at::IntArrayRef shape, int64_t flat) {
  if (shape.empty()) return "";
  std::vector<int64_t> coords(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    coords[d] = flat % shape[d];
    flat /= shape[d];
  }
  std::ostringstream out;
  out << "[";
  for (size_t d = 0; d < coords.size(); ++d) out << (d ? ", " : "") << coords[d];
  out << "]";
  return out.str();
}

// ValueError unless rows x cols elements fit int64 (both concrete; symbolic sizes are checked
// again, concretely, by the operator that runs on real tensors).
void check_product_fits(const c10::SymInt& rows, const c10::SymInt& cols, const char* what) {
  const auto r = rows.maybe_as_int();
  const auto c = cols.maybe_as_int();
  if (!r || !c) return;
  TORCH_CHECK_VALUE(*r == 0 || *c <= std::numeric_limits<int64_t>::max() / *r, prefix(), what,
                    " would have ", *r, " x ", *c, " elements, which overflows int64");
}

void check_index_tensor(const at::Tensor& input) {
  TORCH_CHECK_TYPE(input.defined(), prefix(), "input is an undefined tensor");
  TORCH_CHECK_TYPE(input.layout() == at::kStrided, prefix(),
                   "input must be a dense (strided) tensor, got layout ", input.layout());
  TORCH_CHECK_TYPE(input.scalar_type() == at::kLong || input.scalar_type() == at::kInt, prefix(),
                   "input must hold int64 or int32 indices, got input of dtype ",
                   input.scalar_type());
}

void check_same_device(const at::Tensor& input, const at::Tensor& other, const char* name) {
  TORCH_CHECK_VALUE(input.device() == other.device(), prefix(), "input is on ", input.device(),
                    " but ", name, " is on ", other.device(), "; both must be on the same device");
}

}  // namespace

void check_option_values(std::optional<double> max_norm, double norm_type, bool scale_grad_by_freq,
                         bool sparse) {
  TORCH_CHECK_VALUE(!scale_grad_by_freq, prefix(),
                    "scale_grad_by_freq=True is not supported by unit scaling");
  TORCH_CHECK_VALUE(!sparse, prefix(), "sparse=True is not supported by unit scaling");
  // `!(x > 0)` also rejects NaN.
  TORCH_CHECK_VALUE(!max_norm || *max_norm > 0, prefix(),
                    "max_norm must be > 0 (inf allowed), got max_norm=", *max_norm);
  TORCH_CHECK_VALUE(norm_type > 0, prefix(),
                    "norm_type must be > 0 (inf allowed), got norm_type=", norm_type);
}

void check_padding_idx(const std::optional<c10::SymInt>& padding_idx, const c10::SymInt& num_rows) {
  if (!padding_idx) return;
  const auto idx = padding_idx->maybe_as_int();
  const auto rows = num_rows.maybe_as_int();
  if (!idx || !rows) return;
  TORCH_CHECK_VALUE(*idx >= -*rows && *idx < *rows, prefix(), "padding_idx=", *idx,
                    " is out of range for weight with ", *rows, " rows; expected ", -*rows,
                    " <= padding_idx < ", *rows);
}

std::optional<c10::SymInt> padding_row(const std::optional<c10::SymInt>& padding_idx,
                                       const c10::SymInt& num_rows) {
  if (!padding_idx) return std::nullopt;
  return *padding_idx < 0 ? *padding_idx + num_rows : *padding_idx;
}

int64_t padding_row_or_none(const std::optional<c10::SymInt>& padding_idx, int64_t num_rows) {
  const auto row = padding_row(padding_idx, c10::SymInt(num_rows));
  return row ? row->expect_int() : -1;
}

void check_table_options(const CallOptions& options, const c10::SymInt& num_rows) {
  check_option_values(options.max_norm, options.norm_type, options.scale_grad_by_freq,
                      options.sparse);
  check_padding_idx(options.padding_idx, num_rows);
  check_token_count(options.token_multiplier, options.num_tokens);
}

void check_call_options(const CallOptions& options, const c10::SymInt& num_rows,
                        const c10::SymInt& count, at::ScalarType dtype) {
  check_table_options(options, num_rows);
  check_unit_scale(num_rows, count, options, dtype);
}

void check_input_and_weight(const at::Tensor& input, const at::Tensor& weight) {
  check_index_tensor(input);
  TORCH_CHECK_TYPE(weight.defined(), prefix(), "weight is an undefined tensor");
  TORCH_CHECK_TYPE(weight.layout() == at::kStrided, prefix(),
                   "weight must be a dense (strided) tensor, got layout ", weight.layout());
  TORCH_CHECK_TYPE(is_supported_weight_dtype(weight.scalar_type()), prefix(),
                   "weight must be float32, float64, float16 or bfloat16, got weight of dtype ",
                   weight.scalar_type());
  TORCH_CHECK_VALUE(weight.dim() == 2, prefix(),
                    "weight must be 2-D (num_embeddings, embedding_dim), got weight of shape ",
                    weight.sym_sizes());
  check_same_device(input, weight, "weight");
  check_product_fits(input.sym_numel(), weight.sym_size(1), "the output");
}

void check_backward_tensors(const at::Tensor& grad_output, const at::Tensor& input,
                            const c10::SymInt& num_weights) {
  check_index_tensor(input);
  TORCH_CHECK_TYPE(grad_output.defined(), prefix(), "grad_output is an undefined tensor");
  TORCH_CHECK_TYPE(grad_output.layout() == at::kStrided, prefix(),
                   "grad_output must be a dense (strided) tensor, got layout ",
                   grad_output.layout());
  TORCH_CHECK_TYPE(is_supported_weight_dtype(grad_output.scalar_type()), prefix(),
                   "grad_output must be float32, float64, float16 or bfloat16, got grad_output "
                   "of dtype ",
                   grad_output.scalar_type());
  check_same_device(input, grad_output, "grad_output");
  bool shape_matches = grad_output.dim() == input.dim() + 1;
  for (int64_t d = 0; shape_matches && d < input.dim(); ++d) {
    shape_matches = grad_output.sym_size(d) == input.sym_size(d);
  }
  TORCH_CHECK_VALUE(shape_matches, prefix(), "grad_output must have shape input.shape + (D,), got ",
                    "grad_output of shape ", grad_output.sym_sizes(), " for input of shape ",
                    input.sym_sizes());
  if (const auto rows = num_weights.maybe_as_int()) {
    TORCH_CHECK_VALUE(*rows >= 0, prefix(), "num_weights must be >= 0, got num_weights=", *rows);
  }
  check_product_fits(num_weights, grad_output.sym_size(-1), "the weight gradient");
}

void check_unit_scale(const c10::SymInt& num_rows, const c10::SymInt& count,
                      const CallOptions& options, at::ScalarType dtype) {
  const auto rows = num_rows.maybe_as_int();
  const auto n = count.maybe_as_int();
  if (options.num_tokens && !options.num_tokens->maybe_as_int()) return;  // symbolic
  if (!rows || !n || *rows == 0 || *n == 0) return;
  const double scale = unit_scale(*rows, *n, options);
  const bool is_double = accumulation_type(dtype) == at::kDouble;
  const double smallest = is_double ? std::numeric_limits<double>::min()
                                    : static_cast<double>(std::numeric_limits<float>::min());
  const double largest = is_double ? std::numeric_limits<double>::max()
                                   : static_cast<double>(std::numeric_limits<float>::max());
  TORCH_CHECK_VALUE(
      scale >= smallest && scale <= largest, prefix(), "the unit scale sqrt(V / N_eff) = ", scale,
      " (V = ", *rows, ", N = ", *n, ", token_multiplier=", options.token_multiplier,
      options.num_tokens ? ", num_tokens=" + std::to_string(options.num_tokens->expect_int())
                         : std::string(),
      ") is outside the normal range [", smallest, ", ", largest, "] of ",
      is_double ? "float64" : "float32",
      ", the gradient's accumulation type: the token count is implausible");
}

void check_lookup_arguments(const at::Tensor& input, const at::Tensor& weight,
                            const CallOptions& options) {
  check_input_and_weight(input, weight);
  check_call_options(options, weight.sym_size(0), input.sym_numel(), weight.scalar_type());
}

void check_backward_arguments(const at::Tensor& grad_output, const at::Tensor& input,
                              const c10::SymInt& num_weights, const CallOptions& options) {
  check_backward_tensors(grad_output, input, num_weights);
  check_call_options(options, num_weights, input.sym_numel(), grad_output.scalar_type());
}

void check_scaled_backward_arguments(const at::Tensor& grad_output, const at::Tensor& input,
                                     const c10::SymInt& num_weights, const c10::SymInt& padding_row,
                                     double scale) {
  check_backward_tensors(grad_output, input, num_weights);
  const auto row = padding_row.maybe_as_int();
  const auto rows = num_weights.maybe_as_int();
  if (row && rows) {
    TORCH_CHECK_VALUE(*row >= -1 && *row < *rows, prefix(), "padding_row=", *row,
                      " must be -1 (none) or in [0, ", *rows, ")");
  }
  TORCH_CHECK_VALUE(std::isfinite(scale), prefix(), "scale must be finite, got scale=", scale);
}

void check_renorm_arguments(const at::Tensor& weight, const at::Tensor& input, double max_norm,
                            double norm_type) {
  check_input_and_weight(input, weight);
  check_option_values(max_norm, norm_type, /*scale_grad_by_freq=*/false, /*sparse=*/false);
  check_writable_without_overlap(weight);
}

// Sufficient (and for two dims also necessary) for distinct addresses: ignoring dims of size
// 1, each stride reaches past the whole extent of the dims with smaller strides.
void check_writable_without_overlap(const at::Tensor& weight) {
  std::vector<std::pair<int64_t, int64_t>> dims;  // (stride, size) of dims with size > 1
  for (int64_t d = 0; d < weight.dim(); ++d) {
    const auto size = weight.sym_size(d).maybe_as_int();
    const auto stride = weight.sym_stride(d).maybe_as_int();
    if (!size || !stride) return;  // symbolic: checked when the operator runs
    if (*size > 1) dims.emplace_back(*stride, *size);
  }
  std::sort(dims.begin(), dims.end());
  int64_t extent = 1;  // elements spanned by the dims so far
  bool distinct = true;
  for (const auto& [stride, size] : dims) {
    distinct = distinct && stride >= extent;
    extent = stride * size;
  }
  TORCH_CHECK_VALUE(distinct, prefix(), "max_norm renormalises weight in place, but weight (shape ",
                    weight.sym_sizes(), ", strides ", weight.sym_strides(),
                    ") may have several elements sharing memory");
}

void check_token_count(double token_multiplier, const std::optional<c10::SymInt>& num_tokens) {
  TORCH_CHECK_VALUE(
      std::isfinite(token_multiplier) && token_multiplier > 0, prefix(),
      "token_multiplier must be finite and > 0, got token_multiplier=", token_multiplier);
  if (!num_tokens) return;
  if (const auto tokens = num_tokens->maybe_as_int()) {
    TORCH_CHECK_VALUE(*tokens > 0, prefix(), "num_tokens must be > 0, got num_tokens=", *tokens);
  }
  TORCH_CHECK_VALUE(token_multiplier == 1.0, prefix(),
                    "give num_tokens or token_multiplier, not both (got num_tokens=", *num_tokens,
                    ", token_multiplier=", token_multiplier, ")");
}

void check_scale_arguments(const at::Tensor& x, double scale, bool forward) {
  const std::string prefix =
      kernels::message_prefix(forward ? kernels::Subject::kScaleFwd : kernels::Subject::kScaleBwd);
  TORCH_CHECK_TYPE(x.defined(), prefix, "x is an undefined tensor");
  TORCH_CHECK_VALUE(std::isfinite(scale), prefix, "scale must be finite, got scale=", scale);
}

void throw_if_bad_index(const at::Tensor& indices, int64_t bad_position, int64_t num_rows) {
  if (bad_position < 0) return;
  const int64_t value = indices.reshape({-1})[bad_position].item<int64_t>();
  TORCH_CHECK_INDEX(
      false, kernels::bad_index_message(value, describe_position(indices.sizes(), bad_position),
                                        bad_position, num_rows));
}

}  // namespace unit_scaling::detail
