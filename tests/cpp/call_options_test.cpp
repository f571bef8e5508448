// The options block (src/call_options.h): the schema text, its place on the stack, the
// conversions from the public options, and the one check every kernel_with_options kernel makes
// that its parameters match the operator's schema.
#include "call_options.h"

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unit_scaling/functional.h>

#include <cmath>

#include "operators.h"

namespace {

using unit_scaling::detail::CallOptions;
namespace d = unit_scaling::detail;

CallOptions every_field_set() {
  CallOptions options;
  options.padding_idx = c10::SymInt(-2);
  options.max_norm = 1.5;
  options.norm_type = 3.0;
  options.scale_grad_by_freq = true;
  options.sparse = true;
  options.token_multiplier = 0.25;
  options.num_tokens = c10::SymInt(12);
  return options;
}

void expect_equal(const CallOptions& a, const CallOptions& b) {
  EXPECT_EQ(a.padding_idx, b.padding_idx);
  EXPECT_EQ(a.max_norm, b.max_norm);
  EXPECT_EQ(a.norm_type, b.norm_type);
  EXPECT_EQ(a.scale_grad_by_freq, b.scale_grad_by_freq);
  EXPECT_EQ(a.sparse, b.sparse);
  EXPECT_EQ(a.token_multiplier, b.token_multiplier);
  EXPECT_EQ(a.num_tokens, b.num_tokens);
}

TEST(CallOptions, TheSchemaBlockHasOneValuePerField) {
  const auto schema = torch::schema(d::schema_with_options("f(Tensor x, ", ") -> ()").c_str());
  ASSERT_EQ(schema.arguments().size(), 1 + d::kOptionCount);
  std::vector<std::string> names;
  for (size_t i = 1; i < schema.arguments().size(); ++i) {
    names.push_back(schema.arguments()[i].name());
  }
  EXPECT_EQ(names,
            (std::vector<std::string>{"padding_idx", "max_norm", "norm_type", "scale_grad_by_freq",
                                      "sparse", "token_multiplier", "num_tokens"}));
}

TEST(CallOptions, StackAndIValueRoundTrips) {
  const CallOptions options = every_field_set();
  torch::jit::Stack stack;
  d::push_options(stack, options);
  ASSERT_EQ(stack.size(), d::kOptionCount);
  expect_equal(d::read_options(stack.data()), options);
  expect_equal(d::options_from_ivalue(d::options_to_ivalue(options)), options);
  torch::jit::Stack defaults;
  d::push_options(defaults, CallOptions{});
  expect_equal(d::read_options(defaults.data()), CallOptions{});
  EXPECT_TRUE(defaults[0].isNone() && defaults[1].isNone() && defaults[6].isNone());
}

TEST(CallOptions, FromThePublicOptions) {
  const auto func = torch::nn::functional::EmbeddingFuncOptions()
                        .padding_idx(-2)
                        .max_norm(1.5)
                        .norm_type(3.0)
                        .scale_grad_by_freq(true)
                        .sparse(true);
  const auto grad_scale = unit_scaling::GradScaleOptions().token_multiplier(0.25).num_tokens(12);
  expect_equal(d::call_options(func, grad_scale), every_field_set());
  const auto module = torch::nn::EmbeddingOptions(5, 2)
                          .padding_idx(-2)
                          .max_norm(1.5)
                          .norm_type(3.0)
                          .scale_grad_by_freq(true)
                          .sparse(true);
  expect_equal(d::call_options(module, grad_scale), every_field_set());
  EXPECT_EQ(d::non_default_options(CallOptions{}), "");
  EXPECT_EQ(d::non_default_options(every_field_set()),
            ", padding_idx=-2, max_norm=1.5, norm_type=3, scale_grad_by_freq=true, sparse=true, "
            "token_multiplier=0.25, num_tokens=12");
}

// Every registered operator with the block: the options reach its kernels whole (the lookup
// rejects an option it does not act on, with the words of the composite).
TEST(CallOptions, TheOperatorsReadTheWholeBlock) {
  CallOptions options;
  options.sparse = true;
  try {
    d::call_lookup(torch::tensor({1}), torch::randn({3, 2}), options);
    ADD_FAILURE() << "sparse=True accepted";
  } catch (const c10::ValueError& error) {
    EXPECT_NE(std::string(error.what()).find("sparse=True is not supported"), std::string::npos);
  }
  options = CallOptions{};
  options.padding_idx = c10::SymInt(-1);
  options.token_multiplier = 0.5;
  const auto grad = d::call_backward(torch::ones({2, 1}), torch::tensor({0, 2}), 3, options);
  // Row 2 is padding (-1 wrapped); row 0 gets sqrt(3 / (2 * 0.5)).
  EXPECT_TRUE(torch::allclose(grad, torch::tensor({{std::sqrt(3.0f)}, {0.0f}, {0.0f}})));
}

TEST(CallOptions, KernelParametersMustMatchTheSchema) {
  const auto schema =
      torch::schema(d::schema_with_options("f(Tensor x, int y, ", ", *, int z=0) -> ()").c_str());
  EXPECT_TRUE(d::options_kernel::block_matches(schema, 2 + d::kOptionCount + 1, 2));
  EXPECT_FALSE(d::options_kernel::block_matches(schema, 2 + d::kOptionCount + 1, 1));
  EXPECT_FALSE(d::options_kernel::block_matches(schema, 2 + d::kOptionCount, 2));
}

// The public helpers over the block (functional.h), against plain arithmetic.
TEST(CallOptions, PublicHelpers) {
  namespace F = unit_scaling::functional;
  using unit_scaling::GradScaleOptions;
  EXPECT_DOUBLE_EQ(F::unit_scale(50257, 8192), std::sqrt(50257.0 / 8192.0));
  EXPECT_DOUBLE_EQ(F::unit_scale(100, 8, GradScaleOptions().token_multiplier(0.5)),
                   std::sqrt(100.0 / 4.0));
  EXPECT_DOUBLE_EQ(F::unit_scale(100, 8, GradScaleOptions().num_tokens(25)), 2.0);
  EXPECT_DOUBLE_EQ(F::unit_scale(100, 0), 10.0);  // no lookups count 1
  EXPECT_THROW(F::unit_scale(100, 8, GradScaleOptions().token_multiplier(0.0)), c10::ValueError);
  EXPECT_EQ(F::padding_row(10, F::EmbeddingFuncOptions().padding_idx(-1)), 9);
  EXPECT_EQ(F::padding_row(10, F::EmbeddingFuncOptions().padding_idx(-10)), 0);
  EXPECT_EQ(F::padding_row(10, F::EmbeddingFuncOptions().padding_idx(3)), 3);
  EXPECT_EQ(F::padding_row(10, F::EmbeddingFuncOptions()), -1);
  EXPECT_THROW(F::padding_row(10, F::EmbeddingFuncOptions().padding_idx(10)), c10::ValueError);
  EXPECT_THROW(F::padding_row(10, F::EmbeddingFuncOptions().padding_idx(-11)), c10::ValueError);
  EXPECT_NO_THROW(F::check_options(10, F::EmbeddingFuncOptions().max_norm(1.0).padding_idx(-2)));
  EXPECT_THROW(F::check_options(10, F::EmbeddingFuncOptions().sparse(true)), c10::ValueError);
  EXPECT_THROW(F::check_options(10, {}, GradScaleOptions().num_tokens(0)), c10::ValueError);
}

}  // namespace
