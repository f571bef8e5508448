// libFuzzer target: bytes -> shapes, dtypes, index values, options and a gradient; then forward
// and backward. Invariant: either a c10::Error is thrown and the weight is bit-for-bit
// unchanged, or the output equals a float64 reference lookup (of the renormed weight, itself
// checked against torch::embedding_renorm_) and the gradient matches a float64 reference
// within the accumulation-type tolerance. Any violation aborts, which libFuzzer reports.
#include <fuzzer/FuzzedDataProvider.h>
#include <torch/torch.h>
#include <unit_scaling/functional.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* bytes, size_t size) {
  FuzzedDataProvider data(bytes, size);
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
  const int rank = data.ConsumeIntegralInRange<int>(0, 3);
  std::vector<int64_t> shape;
  for (int d = 0; d < rank; ++d) shape.push_back(data.ConsumeIntegralInRange<int64_t>(0, 6));
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
  if (index_type == at::kInt) {
    input = input.clamp(std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max());
  }
  input = input.to(index_type);
  if (rank >= 2 && data.ConsumeBool()) input = input.transpose(0, 1);

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
