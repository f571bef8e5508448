// scale_fwd scales only the forward value; scale_bwd only the gradient.
#include <unit_scaling/scale.h>

#include "test_support.h"

namespace {

TEST(Scale, ForwardOnly) {
  auto x = torch::randn({3, 4}, torch::kDouble).requires_grad_();
  const auto y = unit_scaling::scale_fwd(x, 2.5);
  EXPECT_TRUE(torch::allclose(y, x.detach() * 2.5));
  const auto g = torch::randn({3, 4}, torch::kDouble);
  y.backward(g);
  EXPECT_TRUE(x.grad().equal(g));
}

TEST(Scale, BackwardOnly) {
  auto x = torch::randn({3, 4}, torch::kDouble).requires_grad_();
  const auto y = unit_scaling::scale_bwd(x, 0.25);
  EXPECT_TRUE(y.equal(x.detach()));
  EXPECT_NE(y.data_ptr(), x.data_ptr());
  const auto g = torch::randn({3, 4}, torch::kDouble);
  y.backward(g);
  EXPECT_TRUE(torch::allclose(x.grad(), g * 0.25));
}

TEST(Scale, BackwardOnlyIsTwiceDifferentiable) {
  auto x = torch::randn({5}, torch::kDouble).requires_grad_();
  auto g = torch::randn({5}, torch::kDouble).requires_grad_();
  const auto y = unit_scaling::scale_bwd(x, 3.0);
  const auto dx = torch::autograd::grad({y}, {x}, {g}, true, true)[0];
  const auto dg = torch::autograd::grad({dx.sum()}, {g})[0];
  EXPECT_TRUE(torch::allclose(dg, torch::full({5}, 3.0, torch::kDouble)));
}

}  // namespace
