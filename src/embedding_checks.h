// Argument validation of every unit_scaling operator. Each operator checks its own arguments
// before it allocates anything sized by them or writes anything, which is what makes the
// operations atomic. Errors use the c10 classes that PyTorch maps onto Python's IndexError /
// ValueError / TypeError, and each message names the argument and the bad value.
// The checks read only metadata (dtype, layout, sizes, devices) and accept symbolic sizes
// (FakeTensor / torch.compile); the index values are checked by each backend (its entry points
// or its kernels, backends/entry_points.h), which reports a bad one with throw_if_bad_index.
// Which entry checks what (each is called first by the entry it names, and by its Meta kernel):
//   embedding (composite, torch_library.cpp)   check_lookup_arguments + check_options
//   embedding_lookup                           check_lookup_arguments
//   embedding_renorm_                          check_renorm_arguments
//   embedding_backward                         check_backward_arguments
//   _scaled_embedding_backward                 check_scaled_backward_arguments
//   scale_fwd / scale_bwd                      check_scale_arguments
//   module constructors (embedding_table.cpp)  check_settings (options + padding_idx vs V)
// The C++ functional and the modules pass their options on as the operators' scalars; the
// index values are checked by the backends (above).
// Every message starts with "unit_scaling <op>: ": "unit_scaling embedding: " for every check of
// the embedding operators, whichever entry reached them (functional, module, vocab-parallel
// module, operator), and "unit_scaling scale_fwd: " / "scale_bwd: " for the primitives.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/nn/options/embedding.h>

#include <optional>

namespace unit_scaling::detail {

using EmbeddingFuncOptions = torch::nn::functional::EmbeddingFuncOptions;

// The functional options of a module's options (the fields they share).
EmbeddingFuncOptions func_options_of(const torch::nn::EmbeddingOptions& options);

// scale_grad_by_freq and sparse are unsupported; max_norm (if set) and norm_type must be > 0.
// The scalars are what the operators receive; the struct form is the modules' constructors'.
void check_options(std::optional<double> max_norm, double norm_type, bool scale_grad_by_freq,
                   bool sparse);
void check_options(const EmbeddingFuncOptions& options);

// The padding row: padding_idx wrapped into [0, num_rows), -1 when there is none. ValueError
// unless -num_rows <= padding_idx < num_rows.
int64_t padding_row(std::optional<int64_t> padding_idx, int64_t num_rows);

// padding_idx wrapped into [0, num_rows) (a negative one counts from the end), unchecked;
// symbolic sizes stay symbolic.
c10::SymInt wrap_padding_idx(const c10::SymInt& padding_idx, const c10::SymInt& num_rows);

// check_options + padding_row for a table of num_rows rows (the modules' constructors).
int64_t check_settings(const EmbeddingFuncOptions& options, int64_t num_rows);

// input of embedding / lookup / renorm and weight: int32/int64 strided indices; a strided 2-D
// float32/float64/float16/bfloat16 table; same device; an output size that fits int64.
void check_input_and_weight(const at::Tensor& input, const at::Tensor& weight);

// The tensors of embedding_backward: input as above, grad_output a strided floating tensor of
// shape input.shape + (D,) on input's device, num_weights >= 0, num_weights x D fits int64.
void check_backward_tensors(const at::Tensor& grad_output, const at::Tensor& input,
                            const c10::SymInt& num_weights);

// Everything each operator checks before it runs, index values excepted. Every kernel of the
// operator calls the same function first -- Autograd, Meta (FakeTensor tracing under
// torch.compile) and each backend's entry point -- so tracing rejects what eager rejects. A
// check that needs a symbolic size is made when the size is concrete; the operator running on
// real tensors always makes it.
void check_lookup_arguments(const at::Tensor& input, const at::Tensor& weight,
                            const std::optional<c10::SymInt>& padding_idx, double token_multiplier,
                            const std::optional<c10::SymInt>& num_tokens);
void check_backward_arguments(const at::Tensor& grad_output, const at::Tensor& input,
                              const c10::SymInt& num_weights,
                              const std::optional<c10::SymInt>& padding_idx,
                              double token_multiplier,
                              const std::optional<c10::SymInt>& num_tokens);
void check_scaled_backward_arguments(const at::Tensor& grad_output, const at::Tensor& input,
                                     const c10::SymInt& num_weights, const c10::SymInt& padding_row,
                                     double scale);
void check_renorm_arguments(const at::Tensor& weight, const at::Tensor& input, double max_norm,
                            double norm_type);

// ValueError unless -num_rows <= padding_idx < num_rows (when both are concrete).
void check_padding_idx(const std::optional<c10::SymInt>& padding_idx, const c10::SymInt& num_rows);

// ValueError unless the unit scale sqrt(num_rows / N_eff) of a call with `count` lookups is a
// normal number of the gradient's accumulation type (float64 for double `dtype`, else
// float32), so that scaling neither overflows to inf nor flushes the gradient to zero; a call
// without lookups or rows scales nothing and passes. Checked when the sizes are concrete.
void check_unit_scale(const c10::SymInt& num_rows, const c10::SymInt& count,
                      double token_multiplier, const std::optional<c10::SymInt>& num_tokens,
                      at::ScalarType dtype);

// ValueError unless weight's elements provably occupy distinct memory (max_norm writes rows in
// parallel); at::has_internal_overlap answers "too hard" for some overlapping layouts. Checked
// when sizes and strides are concrete.
void check_writable_without_overlap(const at::Tensor& weight);

// token_multiplier finite and > 0, num_tokens > 0 (when concrete), not both set
// (docs/SCALING.md).
void check_token_count(double token_multiplier, const std::optional<c10::SymInt>& num_tokens);
void check_token_count(double token_multiplier, std::optional<int64_t> num_tokens);

// A finite scale for scale_fwd / scale_bwd, and a defined tensor.
void check_scale_arguments(const at::Tensor& x, double scale, const char* op);

// The IndexError for a bad position (>= 0) found by any backend: names the value, its position
// in the input and num_rows. Does nothing for -1.
void throw_if_bad_index(const at::Tensor& indices, int64_t bad_position, int64_t num_rows);

}  // namespace unit_scaling::detail
