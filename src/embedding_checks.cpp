#include "embedding_checks.h"

#include <ATen/ATen.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "unit_scale.h"

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

// ValueError unless rows x cols elements fit int64 (both concrete; symbolic sizes are checked
// again, concretely, by the operator that runs on real tensors).
void check_product_fits(const c10::SymInt& rows, const c10::SymInt& cols, const char* what) {
  const auto r = rows.maybe_as_int();
  const auto c = cols.maybe_as_int();
  if (!r || !c) return;
  TORCH_CHECK_VALUE(*r == 0 || *c <= std::numeric_limits<int64_t>::max() / *r, kOp, what,
                    " would have ", *r, " x ", *c, " elements, which overflows int64");
}

void check_index_tensor(const at::Tensor& input) {
  TORCH_CHECK_TYPE(input.defined(), kOp, "input is an undefined tensor");
  TORCH_CHECK_TYPE(input.layout() == at::kStrided, kOp,
                   "input must be a dense (strided) tensor, got layout ", input.layout());
  TORCH_CHECK_TYPE(input.scalar_type() == at::kLong || input.scalar_type() == at::kInt, kOp,
                   "input must hold int64 or int32 indices, got input of dtype ",
                   input.scalar_type());
}

void check_same_device(const at::Tensor& input, const at::Tensor& other, const char* name) {
  TORCH_CHECK_VALUE(input.device() == other.device(), kOp, "input is on ", input.device(), " but ",
                    name, " is on ", other.device(), "; both must be on the same device");
}

}  // namespace

EmbeddingFuncOptions func_options_of(const torch::nn::EmbeddingOptions& options) {
  return EmbeddingFuncOptions()
      .padding_idx(options.padding_idx())
      .max_norm(options.max_norm())
      .norm_type(options.norm_type())
      .scale_grad_by_freq(options.scale_grad_by_freq())
      .sparse(options.sparse());
}

void check_options(std::optional<double> max_norm, double norm_type, bool scale_grad_by_freq,
                   bool sparse) {
  TORCH_CHECK_VALUE(!scale_grad_by_freq, kOp,
                    "scale_grad_by_freq=True is not supported by unit scaling");
  TORCH_CHECK_VALUE(!sparse, kOp, "sparse=True is not supported by unit scaling");
  // `!(x > 0)` also rejects NaN.
  TORCH_CHECK_VALUE(!max_norm || *max_norm > 0, kOp,
                    "max_norm must be > 0 (inf allowed), got max_norm=", *max_norm);
  TORCH_CHECK_VALUE(norm_type > 0, kOp,
                    "norm_type must be > 0 (inf allowed), got norm_type=", norm_type);
}

void check_options(const EmbeddingFuncOptions& options) {
  check_options(options.max_norm(), options.norm_type(), options.scale_grad_by_freq(),
                options.sparse());
}

int64_t padding_row(std::optional<int64_t> padding_idx, int64_t num_rows) {
  if (!padding_idx) return -1;
  const int64_t idx = *padding_idx;
  TORCH_CHECK_VALUE(idx >= -num_rows && idx < num_rows, kOp, "padding_idx=", idx,
                    " is out of range for weight with ", num_rows, " rows; expected ", -num_rows,
                    " <= padding_idx < ", num_rows);
  return wrap_padding_idx(idx, num_rows).expect_int();
}

c10::SymInt wrap_padding_idx(const c10::SymInt& padding_idx, const c10::SymInt& num_rows) {
  return padding_idx < 0 ? padding_idx + num_rows : padding_idx;
}

int64_t check_settings(const EmbeddingFuncOptions& options, int64_t num_rows) {
  check_options(options);
  return padding_row(options.padding_idx(), num_rows);
}

void check_input_and_weight(const at::Tensor& input, const at::Tensor& weight) {
  check_index_tensor(input);
  TORCH_CHECK_TYPE(weight.defined(), kOp, "weight is an undefined tensor");
  TORCH_CHECK_TYPE(weight.layout() == at::kStrided, kOp,
                   "weight must be a dense (strided) tensor, got layout ", weight.layout());
  TORCH_CHECK_TYPE(is_supported_weight_dtype(weight.scalar_type()), kOp,
                   "weight must be float32, float64, float16 or bfloat16, got weight of dtype ",
                   weight.scalar_type());
  TORCH_CHECK_VALUE(weight.dim() == 2, kOp,
                    "weight must be 2-D (num_embeddings, embedding_dim), got weight of shape ",
                    weight.sym_sizes());
  check_same_device(input, weight, "weight");
  check_product_fits(input.sym_numel(), weight.sym_size(1), "the output");
}

void check_backward_tensors(const at::Tensor& grad_output, const at::Tensor& input,
                            const c10::SymInt& num_weights) {
  check_index_tensor(input);
  TORCH_CHECK_TYPE(grad_output.defined(), kOp, "grad_output is an undefined tensor");
  TORCH_CHECK_TYPE(grad_output.layout() == at::kStrided, kOp,
                   "grad_output must be a dense (strided) tensor, got layout ",
                   grad_output.layout());
  TORCH_CHECK_TYPE(is_supported_weight_dtype(grad_output.scalar_type()), kOp,
                   "grad_output must be float32, float64, float16 or bfloat16, got grad_output "
                   "of dtype ",
                   grad_output.scalar_type());
  check_same_device(input, grad_output, "grad_output");
  bool shape_matches = grad_output.dim() == input.dim() + 1;
  for (int64_t d = 0; shape_matches && d < input.dim(); ++d) {
    shape_matches = grad_output.sym_size(d) == input.sym_size(d);
  }
  TORCH_CHECK_VALUE(shape_matches, kOp, "grad_output must have shape input.shape + (D,), got ",
                    "grad_output of shape ", grad_output.sym_sizes(), " for input of shape ",
                    input.sym_sizes());
  if (const auto rows = num_weights.maybe_as_int()) {
    TORCH_CHECK_VALUE(*rows >= 0, kOp, "num_weights must be >= 0, got num_weights=", *rows);
  }
  check_product_fits(num_weights, grad_output.sym_size(-1), "the weight gradient");
}

void check_padding_idx(const std::optional<c10::SymInt>& padding_idx, const c10::SymInt& num_rows) {
  if (!padding_idx) return;
  const auto idx = padding_idx->maybe_as_int();
  const auto rows = num_rows.maybe_as_int();
  if (idx && rows) padding_row(*idx, *rows);
}

void check_unit_scale(const c10::SymInt& num_rows, const c10::SymInt& count,
                      double token_multiplier, const std::optional<c10::SymInt>& num_tokens,
                      at::ScalarType dtype) {
  const auto rows = num_rows.maybe_as_int();
  const auto n = count.maybe_as_int();
  std::optional<int64_t> tokens;
  if (num_tokens) {
    tokens = num_tokens->maybe_as_int();
    if (!tokens) return;
  }
  if (!rows || !n || *rows == 0 || *n == 0) return;
  const double scale = unit_scale(*rows, *n, token_multiplier, tokens);
  const bool is_double = dtype == at::kDouble;
  const double smallest = is_double ? std::numeric_limits<double>::min()
                                    : static_cast<double>(std::numeric_limits<float>::min());
  const double largest = is_double ? std::numeric_limits<double>::max()
                                   : static_cast<double>(std::numeric_limits<float>::max());
  TORCH_CHECK_VALUE(scale >= smallest && scale <= largest, kOp,
                    "the unit scale sqrt(V / N_eff) = ", scale, " (V = ", *rows, ", N = ", *n,
                    ", token_multiplier=", token_multiplier,
                    tokens ? ", num_tokens=" + std::to_string(*tokens) : std::string(),
                    ") is outside the normal range [", smallest, ", ", largest, "] of ",
                    is_double ? "float64" : "float32",
                    ", the gradient's accumulation type: the token count is implausible");
}

void check_lookup_arguments(const at::Tensor& input, const at::Tensor& weight,
                            const std::optional<c10::SymInt>& padding_idx, double token_multiplier,
                            const std::optional<c10::SymInt>& num_tokens) {
  check_input_and_weight(input, weight);
  check_token_count(token_multiplier, num_tokens);
  check_padding_idx(padding_idx, weight.sym_size(0));
  check_unit_scale(weight.sym_size(0), input.sym_numel(), token_multiplier, num_tokens,
                   weight.scalar_type());
}

void check_backward_arguments(const at::Tensor& grad_output, const at::Tensor& input,
                              const c10::SymInt& num_weights,
                              const std::optional<c10::SymInt>& padding_idx,
                              double token_multiplier,
                              const std::optional<c10::SymInt>& num_tokens) {
  check_backward_tensors(grad_output, input, num_weights);
  check_token_count(token_multiplier, num_tokens);
  check_padding_idx(padding_idx, num_weights);
  check_unit_scale(num_weights, input.sym_numel(), token_multiplier, num_tokens,
                   grad_output.scalar_type());
}

void check_scaled_backward_arguments(const at::Tensor& grad_output, const at::Tensor& input,
                                     const c10::SymInt& num_weights, const c10::SymInt& padding_row,
                                     double scale) {
  check_backward_tensors(grad_output, input, num_weights);
  const auto row = padding_row.maybe_as_int();
  const auto rows = num_weights.maybe_as_int();
  if (row && rows) {
    TORCH_CHECK_VALUE(*row >= -1 && *row < *rows, kOp, "padding_row=", *row,
                      " must be -1 (none) or in [0, ", *rows, ")");
  }
  TORCH_CHECK_VALUE(std::isfinite(scale), kOp, "scale must be finite, got scale=", scale);
}

void check_renorm_arguments(const at::Tensor& weight, const at::Tensor& input, double max_norm,
                            double norm_type) {
  check_input_and_weight(input, weight);
  check_options(max_norm, norm_type, /*scale_grad_by_freq=*/false, /*sparse=*/false);
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
  TORCH_CHECK_VALUE(distinct, kOp, "max_norm renormalises weight in place, but weight (shape ",
                    weight.sym_sizes(), ", strides ", weight.sym_strides(),
                    ") may have several elements sharing memory");
}

void check_token_count(double token_multiplier, const std::optional<c10::SymInt>& num_tokens) {
  TORCH_CHECK_VALUE(
      std::isfinite(token_multiplier) && token_multiplier > 0, kOp,
      "token_multiplier must be finite and > 0, got token_multiplier=", token_multiplier);
  if (!num_tokens) return;
  if (const auto tokens = num_tokens->maybe_as_int()) {
    TORCH_CHECK_VALUE(*tokens > 0, kOp, "num_tokens must be > 0, got num_tokens=", *tokens);
  }
  TORCH_CHECK_VALUE(token_multiplier == 1.0, kOp,
                    "give num_tokens or token_multiplier, not both (got num_tokens=", *num_tokens,
                    ", token_multiplier=", token_multiplier, ")");
}

void check_token_count(double token_multiplier, std::optional<int64_t> num_tokens) {
  std::optional<c10::SymInt> tokens;
  if (num_tokens) tokens = c10::SymInt(*num_tokens);
  check_token_count(token_multiplier, tokens);
}

void check_scale_arguments(const at::Tensor& x, double scale, const char* op) {
  TORCH_CHECK_TYPE(x.defined(), "unit_scaling ", op, ": x is an undefined tensor");
  TORCH_CHECK_VALUE(std::isfinite(scale), "unit_scaling ", op,
                    ": scale must be finite, got scale=", scale);
}

void throw_if_bad_index(const at::Tensor& indices, int64_t bad_position, int64_t num_rows) {
  if (bad_position < 0) return;
  const int64_t value = indices.reshape({-1})[bad_position].item<int64_t>();
  TORCH_CHECK_INDEX(false, kOp, "index ", value, " at ",
                    describe_position(indices.sizes(), bad_position),
                    " is out of range for weight with ", num_rows, " rows (V = ", num_rows,
                    "); every index must satisfy 0 <= index < ", num_rows);
}

}  // namespace unit_scaling::detail
