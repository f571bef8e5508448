// The options of one embedding call, as one value from the public API to the kernel launch.
//
// The operators embedding, embedding_lookup, embedding_backward, _check_embedding,
// _embedding_double_backward and the vocab-shard lookup and backward all end their schema with
// the same block, torch's own embedding arguments plus the token count (kOptionsSchema):
//   SymInt? padding_idx=None, float? max_norm=None, float norm_type=2.0,
//   bool scale_grad_by_freq=False, bool sparse=False, *, float token_multiplier=1.0,
//   SymInt? num_tokens=None
// Their kernels take it as one CallOptions (registered with kernel_with_options), every caller
// passes one on (call_with_options), and every operator validates all of it the same way
// (check_call_options, embedding_checks.h) whether or not it acts on each field: a call's
// options are forwarded unchanged from operator to operator, in C++ and in Python (whose mirror
// is python/unit_scaling_cpp/_options.py). Adding an option: docs/ARCHITECTURE.md.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/stack.h>
#include <c10/core/SymInt.h>
#include <torch/library.h>
#include <torch/nn/options/embedding.h>
#include <unit_scaling/grad_scale.h>

#include <cstddef>
#include <initializer_list>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

namespace unit_scaling::detail {

struct CallOptions {
  std::optional<c10::SymInt> padding_idx;  // in [-V, V); negative counts from the end
  std::optional<double> max_norm;          // > 0; the renorm of the referenced rows
  double norm_type = 2.0;                  // p of max_norm's p-norm, > 0
  bool scale_grad_by_freq = false;         // unsupported by unit scaling (ValueError)
  bool sparse = false;                     // unsupported by unit scaling (ValueError)
  double token_multiplier = 1.0;           // N_eff = N * token_multiplier (docs/SCALING.md)
  std::optional<c10::SymInt> num_tokens;   // or N_eff = num_tokens
};

// The schema text of the block, and how many values it holds.
extern const char* const kOptionsSchema;
constexpr size_t kOptionCount = 7;

// "head" + kOptionsSchema + "tail": the schema of an operator that ends with the block.
std::string schema_with_options(const char* head, const char* tail);

// The public C++ options (torch's EmbeddingFuncOptions, or a module's EmbeddingOptions, and our
// GradScaleOptions) as one value.
CallOptions call_options(const torch::nn::functional::EmbeddingFuncOptions& options,
                         const GradScaleOptions& grad_scale);
CallOptions call_options(const torch::nn::EmbeddingOptions& options,
                         const GradScaleOptions& grad_scale);

// The fields that differ from their defaults, as ", name=value" each (the modules' printing).
std::string non_default_options(const CallOptions& options);

// The block's values, in schema order, from `first` (kOptionCount of them), and back.
CallOptions read_options(const c10::IValue* first);
void push_options(torch::jit::Stack& stack, const CallOptions& options);

// The block as one IValue (a tuple), e.g. for an autograd node's saved data, and back.
c10::IValue options_to_ivalue(const CallOptions& options);
CallOptions options_from_ivalue(const c10::IValue& value);

// ---- kernels and calls of the operators that end with the block -----------------------------

namespace options_kernel {

template <typename T>
struct Argument;  // a leading argument of a kernel, from its IValue
template <>
struct Argument<const at::Tensor&> {
  static const at::Tensor& from(const c10::IValue& value) { return value.toTensor(); }
};
template <>
struct Argument<const std::optional<at::Tensor>&> {
  static std::optional<at::Tensor> from(const c10::IValue& value) {
    if (value.isNone()) return std::nullopt;
    return value.toTensor();
  }
};
template <>
struct Argument<c10::SymInt> {
  static c10::SymInt from(const c10::IValue& value) { return value.toSymInt(); }
};
template <>
struct Argument<int64_t> {
  static int64_t from(const c10::IValue& value) { return value.toInt(); }
};
template <>
struct Argument<std::optional<c10::SymInt>> {
  static std::optional<c10::SymInt> from(const c10::IValue& value) {
    if (value.isNone()) return std::nullopt;
    return value.toSymInt();
  }
};
template <>
struct Argument<std::optional<double>> {
  static std::optional<double> from(const c10::IValue& value) {
    if (value.isNone()) return std::nullopt;
    return value.toDouble();
  }
};

template <typename Signature>
struct Traits;
template <typename Result, typename... Args>
struct Traits<Result (*)(Args...)> {
  using Parameters = std::tuple<Args...>;
  using ResultType = Result;
  static constexpr size_t kParameters = sizeof...(Args);
  // The position of the `const CallOptions&` parameter.
  template <size_t I = 0>
  static constexpr size_t options_index() {
    static_assert(I < sizeof...(Args), "a kernel_with_options kernel takes a const CallOptions&");
    if constexpr (std::is_same_v<std::tuple_element_t<I, Parameters>, const CallOptions&>) {
      return I;
    } else {
      return options_index<I + 1>();
    }
  }
  // Values on the stack: the parameters, with the options as kOptionCount of them.
  static constexpr size_t kArguments = kParameters - 1 + kOptionCount;
};

// Parameter I of the kernel: the options, or its IValue (after the block for a trailing one).
template <typename KernelTraits, size_t I>
decltype(auto) parameter(const torch::jit::Stack& stack, size_t first, const CallOptions& options) {
  constexpr size_t k = KernelTraits::template options_index<>();
  if constexpr (I == k) {
    return options;
  } else {
    using Type = std::tuple_element_t<I, typename KernelTraits::Parameters>;
    return Argument<Type>::from(stack[first + (I < k ? I : I - 1 + kOptionCount)]);
  }
}

template <auto Kernel, size_t... I>
auto call(const torch::jit::Stack& stack, size_t first, const CallOptions& options,
          std::index_sequence<I...>) {
  using KernelTraits = Traits<decltype(Kernel)>;
  return Kernel(parameter<KernelTraits, I>(stack, first, options)...);
}

// Whether `schema` has the block where a kernel with `arguments` values on the stack and its
// options parameter at `options_index` expects it (checked once per kernel and operator).
bool block_matches(const c10::FunctionSchema& schema, size_t arguments, size_t options_index);

// The boxed kernel: the parameters by position, the block read into one CallOptions.
template <auto Kernel>
void boxed(const c10::OperatorHandle& op, torch::jit::Stack* stack) {
  using KernelTraits = Traits<decltype(Kernel)>;
  constexpr size_t kArguments = KernelTraits::kArguments;
  static const bool matches =
      block_matches(op.schema(), kArguments, KernelTraits::template options_index<>());
  TORCH_INTERNAL_ASSERT(matches, "kernel_with_options: the kernel's parameters do not match ",
                        op.schema());
  const size_t first = stack->size() - kArguments;
  const CallOptions options =
      read_options(stack->data() + first + KernelTraits::template options_index<>());
  const auto all = std::make_index_sequence<KernelTraits::kParameters>();
  if constexpr (std::is_void_v<typename KernelTraits::ResultType>) {
    call<Kernel>(*stack, first, options, all);
    torch::jit::drop(*stack, kArguments);
  } else {
    auto result = call<Kernel>(*stack, first, options, all);
    torch::jit::drop(*stack, kArguments);
    torch::jit::push(*stack, std::move(result));
  }
}

}  // namespace options_kernel

// A kernel `Result kernel(leading arguments..., const CallOptions&)` for an operator whose
// schema is its leading arguments followed by the block (leading types: const at::Tensor&,
// const std::optional<at::Tensor>&, c10::SymInt, int64_t, std::optional<c10::SymInt>,
// std::optional<double>):
//   m.impl("embedding_lookup", kernel_with_options<&lookup_meta>());
template <auto Kernel>
torch::CppFunction kernel_with_options() {
  return torch::CppFunction::makeFromBoxedFunction<&options_kernel::boxed<Kernel>>();
}

// Calls `op` through the dispatcher with `leading` arguments, the block, then `trailing` ones
// (all of them: a boxed call fills in no default); returns its result (None for an operator
// without one).
template <typename... Leading>
c10::IValue call_with_options_and(const c10::OperatorHandle& op, const CallOptions& options,
                                  std::initializer_list<c10::IValue> trailing,
                                  Leading&&... leading) {
  torch::jit::Stack stack;
  stack.reserve(sizeof...(Leading) + kOptionCount + trailing.size());
  (stack.emplace_back(std::forward<Leading>(leading)), ...);
  push_options(stack, options);
  stack.insert(stack.end(), trailing.begin(), trailing.end());
  op.callBoxed(stack);
  return stack.empty() ? c10::IValue() : std::move(stack.front());
}
template <typename... Leading>
c10::IValue call_with_options(const c10::OperatorHandle& op, const CallOptions& options,
                              Leading&&... leading) {
  return call_with_options_and(op, options, {}, std::forward<Leading>(leading)...);
}

}  // namespace unit_scaling::detail
