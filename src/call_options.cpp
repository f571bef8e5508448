#include "call_options.h"

#include <ATen/core/ivalue.h>

#include <sstream>
#include <vector>

namespace unit_scaling::detail {
namespace {

c10::IValue to_ivalue(const std::optional<c10::SymInt>& value) {
  return value ? c10::IValue(*value) : c10::IValue();
}
c10::IValue to_ivalue(const std::optional<double>& value) {
  return value ? c10::IValue(*value) : c10::IValue();
}
std::optional<c10::SymInt> optional_symint(const c10::IValue& value) {
  if (value.isNone()) return std::nullopt;
  return value.toSymInt();
}

}  // namespace

const char* const kOptionsSchema =
    "SymInt? padding_idx=None, float? max_norm=None, float norm_type=2.0, "
    "bool scale_grad_by_freq=False, bool sparse=False, *, float token_multiplier=1.0, "
    "SymInt? num_tokens=None";

std::string schema_with_options(const char* head, const char* tail) {
  return std::string(head) + kOptionsSchema + tail;
}

CallOptions call_options(const torch::nn::functional::EmbeddingFuncOptions& options,
                         const GradScaleOptions& grad_scale) {
  CallOptions call;
  if (options.padding_idx()) call.padding_idx = c10::SymInt(*options.padding_idx());
  call.max_norm = options.max_norm();
  call.norm_type = options.norm_type();
  call.scale_grad_by_freq = options.scale_grad_by_freq();
  call.sparse = options.sparse();
  call.token_multiplier = grad_scale.token_multiplier();
  if (grad_scale.num_tokens()) call.num_tokens = c10::SymInt(*grad_scale.num_tokens());
  return call;
}

CallOptions call_options(const torch::nn::EmbeddingOptions& options,
                         const GradScaleOptions& grad_scale) {
  return call_options(torch::nn::functional::EmbeddingFuncOptions()
                          .padding_idx(options.padding_idx())
                          .max_norm(options.max_norm())
                          .norm_type(options.norm_type())
                          .scale_grad_by_freq(options.scale_grad_by_freq())
                          .sparse(options.sparse()),
                      grad_scale);
}

std::string non_default_options(const CallOptions& options) {
  std::ostringstream out;
  if (options.padding_idx) out << ", padding_idx=" << *options.padding_idx;
  if (options.max_norm) out << ", max_norm=" << *options.max_norm;
  if (options.norm_type != 2.0) out << ", norm_type=" << options.norm_type;
  if (options.scale_grad_by_freq) out << ", scale_grad_by_freq=true";
  if (options.sparse) out << ", sparse=true";
  if (options.token_multiplier != 1.0) out << ", token_multiplier=" << options.token_multiplier;
  if (options.num_tokens) out << ", num_tokens=" << *options.num_tokens;
  return out.str();
}

CallOptions read_options(const c10::IValue* first) {
  CallOptions options;
  options.padding_idx = optional_symint(first[0]);
  if (!first[1].isNone()) options.max_norm = first[1].toDouble();
  options.norm_type = first[2].toDouble();
  options.scale_grad_by_freq = first[3].toBool();
  options.sparse = first[4].toBool();
  options.token_multiplier = first[5].toDouble();
  options.num_tokens = optional_symint(first[6]);
  return options;
}

void push_options(torch::jit::Stack& stack, const CallOptions& options) {
  stack.emplace_back(to_ivalue(options.padding_idx));
  stack.emplace_back(to_ivalue(options.max_norm));
  stack.emplace_back(options.norm_type);
  stack.emplace_back(options.scale_grad_by_freq);
  stack.emplace_back(options.sparse);
  stack.emplace_back(options.token_multiplier);
  stack.emplace_back(to_ivalue(options.num_tokens));
}

c10::IValue options_to_ivalue(const CallOptions& options) {
  std::vector<c10::IValue> values;
  values.reserve(kOptionCount);
  push_options(values, options);
  return c10::ivalue::Tuple::create(std::move(values));
}

namespace options_kernel {

bool block_matches(const c10::FunctionSchema& schema, size_t arguments, size_t options_index) {
  const auto& args = schema.arguments();
  return args.size() == arguments && args[options_index].name() == "padding_idx" &&
         args[options_index + kOptionCount - 1].name() == "num_tokens";
}

}  // namespace options_kernel

CallOptions options_from_ivalue(const c10::IValue& value) {
  return read_options(value.toTupleRef().elements().asArrayRef().data());
}

}  // namespace unit_scaling::detail
