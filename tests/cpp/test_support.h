// Shared helpers of the C++ tests: independent float64 references and error assertions.
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace unit_scaling::testing {

inline const std::vector<at::ScalarType>& weight_dtypes() {
  static const std::vector<at::ScalarType> types{at::kFloat, at::kDouble, at::kHalf, at::kBFloat16};
  return types;
}
inline const std::vector<at::ScalarType>& index_dtypes() {
  static const std::vector<at::ScalarType> types{at::kLong, at::kInt};
  return types;
}

// n indices in [0, num_rows) drawn from Zipf(exponent): P(row k) ~ 1 / (k + 1)^exponent.
inline at::Tensor zipf_indices(int64_t num_rows, int64_t n, double exponent) {
  const auto ranks = torch::arange(1, num_rows + 1, torch::kDouble);
  return torch::multinomial(ranks.pow(-exponent), n, /*replacement=*/true);
}

// Reference lookup in float64 by explicit loops over the index values.
inline at::Tensor reference_lookup(const at::Tensor& input, const at::Tensor& weight) {
  const at::Tensor table = weight.to(at::kDouble).contiguous();
  const at::Tensor flat = input.to(at::kLong).reshape({-1}).contiguous();
  const int64_t dim = table.size(1);
  at::Tensor out = at::empty({flat.numel(), dim}, at::kDouble);
  auto t = table.accessor<double, 2>();
  auto o = out.accessor<double, 2>();
  auto idx = flat.accessor<int64_t, 1>();
  for (int64_t p = 0; p < flat.numel(); ++p) {
    for (int64_t c = 0; c < dim; ++c) o[p][c] = t[idx[p]][c];
  }
  std::vector<int64_t> shape(input.sizes().begin(), input.sizes().end());
  shape.push_back(dim);
  return out.view(shape);
}

// Reference unit-scaled weight gradient in float64: sqrt(V/N) * scatter-sum of grad_out rows,
// padding positions dropped, zeros when N == 0.
inline at::Tensor reference_weight_grad(const at::Tensor& input, const at::Tensor& grad_out,
                                        int64_t num_rows, std::optional<int64_t> padding_idx) {
  const at::Tensor flat = input.to(at::kLong).reshape({-1}).contiguous();
  const int64_t count = flat.numel();
  const int64_t dim = grad_out.size(-1);
  const at::Tensor grad = grad_out.to(at::kDouble).reshape({count, dim}).contiguous();
  at::Tensor sum = at::zeros({num_rows, dim}, at::kDouble);
  auto s = sum.accessor<double, 2>();
  auto g = grad.accessor<double, 2>();
  auto idx = flat.accessor<int64_t, 1>();
  std::optional<int64_t> pad = padding_idx;
  if (pad && *pad < 0) *pad += num_rows;
  for (int64_t p = 0; p < count; ++p) {
    if (pad && idx[p] == *pad) continue;
    for (int64_t c = 0; c < dim; ++c) s[idx[p]][c] += g[p][c];
  }
  if (count == 0) return sum;
  return sum * std::sqrt(static_cast<double>(num_rows) / static_cast<double>(count));
}

// Same dtype, same shape and identical bytes (NaN payloads included), on any devices (compared
// on the CPU).
inline bool bitwise_equal(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  const at::Tensor ca = a.cpu().contiguous();
  const at::Tensor cb = b.cpu().contiguous();
  return ca.nbytes() == 0 ||
         std::memcmp(ca.const_data_ptr(), cb.const_data_ptr(), ca.nbytes()) == 0;
}

// Unit roundoff of a floating dtype.
inline double unit_roundoff(at::ScalarType type) {
  switch (type) {
    case at::kDouble:
      return 0x1p-53;
    case at::kHalf:
      return 0x1p-11;
    case at::kBFloat16:
      return 0x1p-8;
    default:
      return 0x1p-24;
  }
}

// Checks a weight gradient computed by the op against the float64 reference for the same
// input and grad_out. The bound per element is the sum of (a) rounding to the weight dtype,
// 2u |ref| plus the dtype's smallest subnormal (the spacing near zero), and (b) the worst-case
// error of summing the row's n uses in the accumulation type, n * u_acc * s * sum |grad_out|
// (float32 for 16-bit and float32 weights, float64 for double). 16-bit results must also equal the
// correctly rounded reference in at least 99% of elements: they are accumulated in float32 and
// rounded once. `ours` may live on any device; input and grad_out are the CPU data.
inline void expect_gradient_matches(const at::Tensor& ours_on_device, const at::Tensor& input,
                                    const at::Tensor& grad_out, int64_t num_rows,
                                    std::optional<int64_t> padding_idx) {
  const at::Tensor ours = ours_on_device.cpu();
  const at::Tensor reference = reference_weight_grad(input, grad_out, num_rows, padding_idx);
  ASSERT_EQ(ours.sizes(), reference.sizes());
  const at::Tensor magnitude =
      reference_weight_grad(input, grad_out.to(at::kDouble).abs(), num_rows, padding_idx);
  const at::Tensor ones = torch::ones({input.numel(), 1}, at::kDouble);
  const at::Tensor uses = reference_weight_grad(input, ones, num_rows, padding_idx) /
                          (input.numel() ? std::sqrt(double(num_rows) / input.numel()) : 1.0);
  const at::ScalarType type = ours.scalar_type();
  const double u = unit_roundoff(type);
  const double u_acc = type == at::kDouble ? 0x1p-53 : 0x1p-24;
  const double spacing_near_zero = type == at::kHalf ? 0x1p-24 : 0x1p-133;
  const at::Tensor bound = reference.abs() * (2 * u) + uses * magnitude * u_acc + spacing_near_zero;
  const at::Tensor error = (ours.to(at::kDouble) - reference).abs();
  EXPECT_TRUE(error.le(bound).all().item<bool>())
      << "max abs error " << error.max().item<double>() << ", max excess "
      << (error - bound).max().item<double>();
  if (type == at::kHalf || type == at::kBFloat16) {
    const double mismatch_fraction =
        ours.numel() == 0 ? 0.0 : ours.ne(reference.to(type)).to(at::kDouble).mean().item<double>();
    EXPECT_LE(mismatch_fraction, 0.01) << "too many elements differ from the rounded reference";
  }
}

// Runs f, expects an exception of class E whose message contains every needle.
template <typename E>
void expect_error(const std::function<void()>& f, const std::vector<std::string>& needles) {
  try {
    f();
  } catch (const E& e) {
    const std::string message = e.what();
    for (const auto& needle : needles) {
      EXPECT_NE(message.find(needle), std::string::npos)
          << "message lacks '" << needle << "': " << message;
    }
    return;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "wrong exception class: " << e.what();
    return;
  }
  ADD_FAILURE() << "no exception thrown";
}

}  // namespace unit_scaling::testing
