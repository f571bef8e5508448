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

// Same dtype, same shape and identical bytes (NaN payloads included).
inline bool bitwise_equal(const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() != b.scalar_type() || a.sizes() != b.sizes()) return false;
  const at::Tensor ca = a.contiguous();
  const at::Tensor cb = b.contiguous();
  return std::memcmp(ca.const_data_ptr(), cb.const_data_ptr(), ca.nbytes()) == 0;
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

// Checks a computed gradient against its float64 reference. 16-bit results are accumulated in
// float32 and rounded once, so they must equal the rounded reference, up to one unit in the last
// place where float32 accumulation moved a sum across a rounding boundary (at most 1% of them).
// float32/float64 results carry the summation error of their own precision.
inline void expect_gradient_matches(const at::Tensor& ours, const at::Tensor& reference) {
  ASSERT_EQ(ours.sizes(), reference.sizes());
  const double u = unit_roundoff(ours.scalar_type());
  const at::Tensor error = (ours.to(at::kDouble) - reference).abs();
  if (ours.scalar_type() == at::kFloat || ours.scalar_type() == at::kDouble) {
    const at::Tensor bound = reference.abs() * (64 * u) + 64 * u;
    EXPECT_TRUE(error.le(bound).all().item<bool>())
        << "max abs error " << error.max().item<double>();
    return;
  }
  const at::Tensor mismatched = ours.ne(reference.to(ours.scalar_type()));
  const double mismatch_fraction =
      ours.numel() == 0 ? 0.0 : mismatched.to(at::kDouble).mean().item<double>();
  EXPECT_LE(mismatch_fraction, 0.01) << "too many elements differ from the rounded reference";
  const at::Tensor bound = reference.abs() * (2 * u) + 1e-300;
  EXPECT_TRUE(error.le(bound).all().item<bool>()) << "max abs error " << error.max().item<double>();
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
