// libFuzzer target: bytes -> shapes, dtypes, index values, options and a gradient; then forward
// and backward through the public op, or one registered operator called directly (as
// torch.ops.unit_scaling.* can be: embedding_backward, embedding_lookup, embedding_renorm_ on
// arbitrary strides, scale_fwd/scale_bwd), each with its own invariant. Invariant: either a
// c10::Error is thrown and the weight is bit-for-bit unchanged, or the output equals a float64
// reference lookup (of the renormed weight, itself checked against torch::embedding_renorm_) and
// the gradient matches a float64 reference within the accumulation-type tolerance. Any violation
// aborts, which libFuzzer reports.
#include <fuzzer/FuzzedDataProvider.h>
#include <torch/torch.h>
#include <unit_scaling/functional.h>
#include <unit_scaling/scale.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "operators.h"

namespace {

void require(bool condition, const char* what) {
  if (!condition) {
    std::fprintf(stderr, "fuzz invariant violated: %s\n", what);
    std::abort();
  }
}

bool same_bytes(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor ca = a.contiguous(), cb = b.contiguous();
  return ca.sizes() == cb.sizes() && ca.scalar_type() == cb.scalar_type() &&
         (ca.nbytes() == 0 ||
          std::memcmp(ca.const_data_ptr(), cb.const_data_ptr(), ca.nbytes()) == 0);
}

// Equal values, NaN matching NaN.
bool equal_nan(const at::Tensor& a, const at::Tensor& b) {
  const at::Tensor x = a.to(at::kDouble), y = b.to(at::kDouble);
  return x.sizes() == y.sizes() &&
         (x.eq(y).logical_or(x.isnan().logical_and(y.isnan()))).all().item<bool>();
}

template <typename T>
T pick(FuzzedDataProvider& data, std::initializer_list<T> choices) {
  const auto i = data.ConsumeIntegralInRange<size_t>(0, choices.size() - 1);
  return *(choices.begin() + i);
}

double pick_double(FuzzedDataProvider& data, std::initializer_list<double> special) {
  if (data.ConsumeBool()) return pick(data, special);
  return data.ConsumeFloatingPointInRange<double>(-4.0, 4.0);
}

// Indices of `shape` drawn mostly in [0, rows), sometimes extreme or out of range.
at::Tensor fuzz_indices(FuzzedDataProvider& data, const std::vector<int64_t>& shape, int64_t rows,
                        at::ScalarType type) {
  at::Tensor input = torch::empty(shape, at::kLong);
  auto flat = input.view({-1});
  for (int64_t i = 0; i < flat.numel(); ++i) {
    int64_t value = rows > 0 ? data.ConsumeIntegralInRange<int64_t>(0, rows - 1) : 0;
    if (data.ConsumeIntegralInRange<int>(0, 15) == 0) {
      value = pick<int64_t>(data, {std::numeric_limits<int64_t>::min(), -1, rows - 1, rows,
                                   std::numeric_limits<int64_t>::max()});
    }
    flat[i] = value;
  }
  if (type == at::kInt) {
    input = input.clamp(std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max());
  }
  return input.to(type);
}

std::vector<int64_t> fuzz_shape(FuzzedDataProvider& data) {
  std::vector<int64_t> shape;
  const int rank = data.ConsumeIntegralInRange<int>(0, 3);
  for (int d = 0; d < rank; ++d) shape.push_back(data.ConsumeIntegralInRange<int64_t>(0, 5));
  return shape;
}

bool all_in_range(const at::Tensor& indices, int64_t rows) {
  const at::Tensor flat = indices.to(at::kLong).reshape({-1});
  return flat.numel() == 0 || (flat.ge(0).all().item<bool>() && flat.lt(rows).all().item<bool>());
}

// embedding_backward called directly: any grad_output shape/dtype, num_weights, padding.
void fuzz_backward_operator(FuzzedDataProvider& data) {
  const int64_t rows = data.ConsumeIntegralInRange<int64_t>(-2, 30);
  const int64_t dim = data.ConsumeIntegralInRange<int64_t>(0, 6);
  const auto index_type = pick(data, {at::kLong, at::kInt, at::kFloat, at::kShort});
  const auto shape = fuzz_shape(data);
  const at::Tensor input = fuzz_indices(data, shape, rows, index_type);
  std::vector<int64_t> grad_shape = shape;
  grad_shape.push_back(dim);
  if (data.ConsumeIntegralInRange<int>(0, 7) == 0) grad_shape.erase(grad_shape.begin());
  if (data.ConsumeIntegralInRange<int>(0, 7) == 0 && !grad_shape.empty()) grad_shape[0] += 1;
  const auto grad_type =
      pick(data, {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16, at::kByte, at::kLong});
  const at::Tensor grad = torch::randn(grad_shape, at::kDouble).to(grad_type);
  std::optional<c10::SymInt> padding;
  int64_t pad = -1;
  if (data.ConsumeBool()) {
    pad = pick<int64_t>(data, {-rows - 1, -rows, -1, 0, rows - 1, rows});
    padding = c10::SymInt(pad);
  }
  at::Tensor result;
  try {
    unit_scaling::detail::CallOptions options;
    options.padding_idx = padding;
    result = unit_scaling::detail::call_backward(grad, input, rows, options);
  } catch (const c10::Error&) {
    return;
  }
  // Accepted: the arguments were all valid, and the result is the float64 reference.
  require(rows >= 0 && all_in_range(input, rows) && grad_shape.size() == shape.size() + 1,
          "embedding_backward accepted invalid arguments");
  // (D is grad_output's last size: for a 0-d input the fuzzed shape may widen it.)
  const int64_t n = input.numel();
  const int64_t width = grad.size(-1);
  at::Tensor expected = torch::zeros({rows, width}, at::kDouble);
  if (n > 0 && rows > 0) {
    const at::Tensor flat = input.to(at::kLong).reshape({-1});
    at::Tensor g = grad.to(at::kDouble).reshape({n, width});
    if (padding) g = g * flat.ne((pad + rows) % rows).unsqueeze(1).to(at::kDouble);
    expected.index_add_(0, flat, g).mul_(std::sqrt(static_cast<double>(rows) / n));
  }
  require(torch::allclose(result.to(at::kDouble), expected, 1e-2, 1e-2),
          "embedding_backward differs from the float64 reference");
}

// embedding_renorm_ on arbitrary (possibly overlapping) strides: error with the storage
// untouched, or exactly what embedding_renorm_ does to a non-overlapping copy.
void fuzz_renorm_operator(FuzzedDataProvider& data) {
  const int64_t rows = data.ConsumeIntegralInRange<int64_t>(0, 6);
  const int64_t dim = data.ConsumeIntegralInRange<int64_t>(0, 6);
  const int64_t row_stride = data.ConsumeIntegralInRange<int64_t>(0, 8);
  const int64_t col_stride = data.ConsumeIntegralInRange<int64_t>(0, 3);
  at::Tensor storage = torch::randn({64}, at::kFloat) * 4;
  const int64_t extent =
      1 + (rows > 0 ? rows - 1 : 0) * row_stride + (dim > 0 ? dim - 1 : 0) * col_stride;
  if (extent > 64) return;
  at::Tensor weight = storage.as_strided({rows, dim}, {row_stride, col_stride});
  const at::Tensor input = fuzz_indices(data, fuzz_shape(data), rows, at::kLong);
  const double max_norm = pick_double(data, {0.0, -1.0, 0.5, 1.0});
  const double norm_type = pick(data, {1.0, 2.0, 3.0, std::numeric_limits<double>::infinity()});
  const at::Tensor before = storage.clone();
  const at::Tensor expected = weight.clone();  // contiguous copy of the rows as they were
  try {
    unit_scaling::detail::renorm_op().call(weight, input, max_norm, norm_type);
  } catch (const c10::Error&) {
    require(same_bytes(storage, before), "embedding_renorm_ wrote before throwing");
    return;
  }
  require(max_norm > 0 && all_in_range(input, rows), "embedding_renorm_ accepted bad arguments");
  if (input.numel() > 0 && dim > 0 && rows > 0) {
    at::Tensor target = expected;
    torch::embedding_renorm_(target, input.reshape({-1}), max_norm, norm_type);
  }
  require(torch::allclose(weight, expected, 1e-5, 1e-5), "embedding_renorm_ differs from ATen's");
}

// embedding_lookup and the scale primitives called directly.
void fuzz_lookup_and_scale_operators(FuzzedDataProvider& data) {
  const int64_t rows = data.ConsumeIntegralInRange<int64_t>(0, 20);
  const int64_t dim = data.ConsumeIntegralInRange<int64_t>(0, 5);
  const auto weight_type = pick(data, {at::kFloat, at::kHalf, at::kLong});
  const at::Tensor weight = torch::randn({rows, dim}, at::kDouble).to(weight_type);
  const at::Tensor input =
      fuzz_indices(data, fuzz_shape(data), rows, pick(data, {at::kLong, at::kInt, at::kFloat}));
  std::optional<c10::SymInt> padding;
  if (data.ConsumeBool()) padding = c10::SymInt(pick<int64_t>(data, {-rows - 1, -1, 0, rows}));
  try {
    unit_scaling::detail::CallOptions options;
    options.padding_idx = padding;
    const at::Tensor out = unit_scaling::detail::call_lookup(input, weight, options);
    require(all_in_range(input, rows), "embedding_lookup accepted a bad index");
    require(same_bytes(out.reshape({-1, dim}),
                       weight.index_select(0, input.to(at::kLong).reshape({-1}))),
            "embedding_lookup differs from index_select");
  } catch (const c10::Error&) {
  }
  const double scale = pick_double(data, {0.0, -1.0, std::nan(""), HUGE_VAL});
  try {
    const at::Tensor scaled = unit_scaling::scale_fwd(weight, scale);
    require(std::isfinite(scale), "scale_fwd accepted a non-finite scale");
    require(equal_nan(scaled, weight * scale), "scale_fwd differs from x * scale");
    require(same_bytes(unit_scaling::scale_bwd(weight, scale), weight), "scale_bwd is not a copy");
  } catch (const c10::Error&) {
    require(!std::isfinite(scale), "scale_fwd rejected a finite scale");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  FuzzedDataProvider data(bytes, size);
  switch (data.ConsumeIntegralInRange<int>(0, 7)) {
    case 4:
      fuzz_backward_operator(data);
      return 0;
    case 5:
      fuzz_renorm_operator(data);
      return 0;
    case 6:
      fuzz_lookup_and_scale_operators(data);
      return 0;
    default:
      break;  // the public op, forward and backward (most inputs)
  }
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  const int64_t rows = data.ConsumeIntegralInRange<int64_t>(0, 40);
  const int64_t dim = data.ConsumeIntegralInRange<int64_t>(0, 12);

  // Weight: mostly a valid float table; sometimes a wrong dtype or rank; maybe transposed.
  const auto weight_type = pick(data, {at::kFloat, at::kDouble, at::kHalf, at::kBFloat16,
                                       at::kFloat, at::kLong, at::kFloat8_e4m3fn});
  const int weight_rank = pick(data, {2, 2, 2, 2, 1, 3});
  std::vector<int64_t> weight_shape{rows, dim};
  if (weight_rank == 1) weight_shape = {rows};
  if (weight_rank == 3) weight_shape = {rows, dim, 2};
  const bool transposed = weight_rank == 2 && data.ConsumeBool();
  at::Tensor storage = torch::randn(transposed ? std::vector<int64_t>{dim, rows} : weight_shape,
                                    torch::TensorOptions().dtype(at::kDouble)) *
                       data.ConsumeFloatingPointInRange<double>(0.0, 8.0);
  if (storage.numel() > 0 && data.ConsumeBool()) {
    storage.view({-1})[data.ConsumeIntegralInRange<int64_t>(0, storage.numel() - 1)] =
        pick(data, {nan, inf, -inf});
  }
  storage = storage.to(weight_type);
  const bool differentiable = at::isFloatingType(weight_type) && weight_type != at::kFloat8_e4m3fn;
  if (differentiable) storage.requires_grad_();  // before taking the view, as a user would
  at::Tensor weight = transposed ? storage.t() : storage;

  // Input: rank 0-3, int64 or int32 (sometimes float or int16), values mostly valid.
  const auto index_type = pick(data, {at::kLong, at::kLong, at::kInt, at::kFloat, at::kShort});
  const std::vector<int64_t> shape = fuzz_shape(data);
  at::Tensor input = fuzz_indices(data, shape, rows, index_type);
  if (shape.size() >= 2 && data.ConsumeBool()) input = input.transpose(0, 1);

  // Options, valid and invalid.
  unit_scaling::functional::EmbeddingFuncOptions options;
  if (data.ConsumeBool()) {
    options.padding_idx(pick<int64_t>(
        data, {-rows - 1, -rows, -1, 0, rows - 1, rows, data.ConsumeIntegral<int64_t>()}));
  }
  if (data.ConsumeBool()) options.max_norm(pick_double(data, {0.0, -1.0, nan, inf, 0.5, 2.0}));
  options.norm_type(data.ConsumeBool() ? 2.0 : pick_double(data, {1.0, 3.0, 0.0, -1.0, inf, nan}));
  if (data.ConsumeIntegralInRange<int>(0, 20) == 0) options.scale_grad_by_freq(true);
  if (data.ConsumeIntegralInRange<int>(0, 20) == 0) options.sparse(true);

  const at::Tensor before = storage.detach().clone();
  at::Tensor out;
  try {
    out = unit_scaling::functional::embedding(input, weight, options);
  } catch (const c10::Error&) {
    require(same_bytes(storage.detach(), before), "weight modified by a call that threw");
    return 0;
  }

  // Success: the weight was renormed exactly like embedding_renorm_, or not touched at all.
  at::Tensor expected_weight = before.clone();
  // (Zero-width rows have norm 0 and stay as they are; embedding_renorm_ refuses the inf norm
  // of an empty row, so it is not asked.)
  if (options.max_norm() && input.numel() > 0 && dim > 0) {
    at::Tensor view = transposed ? expected_weight.t() : expected_weight;
    torch::embedding_renorm_(view, input.reshape({-1}).to(at::kLong), *options.max_norm(),
                             options.norm_type());
  }
  const double unit = weight_type == at::kDouble ? 1e-12 : weight_type == at::kFloat ? 1e-5 : 1e-2;
  require(torch::allclose(storage.detach().to(at::kDouble).nan_to_num(0, 0, 0),
                          expected_weight.to(at::kDouble).nan_to_num(0, 0, 0), unit, unit) &&
              storage.detach().isnan().equal(expected_weight.isnan()),
          "renormed weight differs from embedding_renorm_");

  // Output: exactly the rows of the (renormed) weight.
  const at::Tensor indices = input.to(at::kLong);
  const at::Tensor table = weight.detach().to(at::kDouble);
  const at::Tensor reference = table.index_select(0, indices.reshape({-1})).view([&] {
    auto s = indices.sizes().vec();
    s.push_back(table.size(1));
    return s;
  }());
  require(equal_nan(out, reference), "output differs from the float64 lookup");

  // Gradient against float64: s * scatter-sum of grad_out, padding excluded.
  const at::Tensor grad_out = torch::randn(out.sizes(), at::kDouble).to(weight_type);
  out.backward(grad_out);
  require(storage.grad().defined(), "no gradient reached the weight");
  const at::Tensor grad = transposed ? storage.grad().t() : storage.grad();
  const int64_t n = indices.numel();
  at::Tensor expected = torch::zeros({rows, dim}, at::kDouble);
  at::Tensor magnitude = torch::zeros({rows, dim}, at::kDouble);
  if (n > 0) {
    at::Tensor flat_indices = indices.reshape({-1});
    at::Tensor g = grad_out.to(at::kDouble).reshape({n, dim});
    if (options.padding_idx()) {
      const int64_t pad = (*options.padding_idx() + rows) % rows;
      g = g * flat_indices.ne(pad).unsqueeze(1).to(at::kDouble);
    }
    const double s = std::sqrt(static_cast<double>(rows) / static_cast<double>(n));
    expected.index_add_(0, flat_indices, g).mul_(s);
    magnitude.index_add_(0, flat_indices, g.abs()).mul_(s * n);
  }
  const double u = weight_type == at::kDouble  ? 0x1p-52
                   : weight_type == at::kFloat ? 0x1p-23
                   : weight_type == at::kHalf  ? 0x1p-10
                                               : 0x1p-7;
  const at::Tensor error = (grad.to(at::kDouble) - expected).abs();
  const at::Tensor bound = expected.abs() * u + magnitude * 0x1p-23 + 0x1p-24;
  require(error.le(bound).all().item<bool>(), "gradient differs from the float64 reference");
  return 0;
}
