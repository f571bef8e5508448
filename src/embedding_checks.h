// Argument validation of every unit_scaling operator: the one home of each rule (the table in
// docs/ARCHITECTURE.md says which function holds which). Each operator checks its arguments
// before it allocates anything sized by them or writes anything, which is what makes the
// operations atomic. Errors use the c10 classes that PyTorch maps onto Python's IndexError /
// ValueError / TypeError; each message starts with message_prefix() (kernels/messages.h) and
// names the argument and the bad value.
// The checks read only metadata (dtype, layout, sizes, devices) and accept symbolic sizes
// (FakeTensor / torch.compile): a check that needs a symbolic size is made when it is concrete,
// and always by the operator running on real tensors. The index values are checked once per
// operator by the backend (backends/entry_points.h), which reports a bad one with
// throw_if_bad_index.
// Which entry checks what (each is called first by every kernel of its operator -- Autograd,
// Meta, each backend's entry point -- so tracing rejects what eager rejects):
//   embedding, embedding_lookup, _check_embedding   check_lookup_arguments
//   embedding_backward, _embedding_double_backward  check_backward_arguments
//   _scaled_embedding_backward                      check_scaled_backward_arguments
//   embedding_renorm_                               check_renorm_arguments
//   scale_fwd / scale_bwd                           check_scale_arguments
//   modules, functional::check_options             check_table_options (embedding_table.h adds
//                                                   the modules' sizes and tables)
#pragma once

#include <ATen/core/Tensor.h>

#include <optional>

#include "call_options.h"

namespace unit_scaling::detail {

// ---- the options ---------------------------------------------------------------------------

// Every option of a call against a table of num_rows rows and `count` lookups stored as `dtype`:
// check_option_values, check_padding_idx, check_token_count and check_unit_scale.
void check_call_options(const CallOptions& options, const c10::SymInt& num_rows,
                        const c10::SymInt& count, at::ScalarType dtype);

// The same without lookups (the token count's scale is checked per call): a table's settings.
void check_table_options(const CallOptions& options, const c10::SymInt& num_rows);

// scale_grad_by_freq and sparse are unsupported; max_norm (if set) and norm_type must be > 0.
void check_option_values(std::optional<double> max_norm, double norm_type, bool scale_grad_by_freq,
                         bool sparse);

// ValueError unless -num_rows <= padding_idx < num_rows (when both are concrete).
void check_padding_idx(const std::optional<c10::SymInt>& padding_idx, const c10::SymInt& num_rows);

// padding_idx wrapped into [0, num_rows) (a negative one counts from the end), unchecked;
// symbolic sizes stay symbolic. nullopt without padding_idx.
std::optional<c10::SymInt> padding_row(const std::optional<c10::SymInt>& padding_idx,
                                       const c10::SymInt& num_rows);

// The same, concrete, -1 for none.
int64_t padding_row_or_none(const std::optional<c10::SymInt>& padding_idx, int64_t num_rows);

// token_multiplier finite and > 0, num_tokens > 0 (when concrete), not both set
// (docs/SCALING.md).
void check_token_count(double token_multiplier, const std::optional<c10::SymInt>& num_tokens);

// ValueError unless the unit scale sqrt(num_rows / N_eff) of a call with `count` lookups is a
// normal number of the gradient's accumulation type (accumulation_dtype of `dtype`), so that
// scaling neither overflows to inf nor flushes the gradient to zero; a call without lookups or
// rows scales nothing and passes. Checked when the sizes are concrete.
void check_unit_scale(const c10::SymInt& num_rows, const c10::SymInt& count,
                      const CallOptions& options, at::ScalarType dtype);

// ---- the tensors -----------------------------------------------------------------------------

// input of embedding / lookup / renorm and weight: int32/int64 strided indices; a strided 2-D
// table of a supported dtype (dtypes.h); same device; an output size that fits int64.
void check_input_and_weight(const at::Tensor& input, const at::Tensor& weight);

// The tensors of embedding_backward: input as above, grad_output a strided tensor of a
// supported dtype and shape input.shape + (D,) on input's device, num_weights >= 0,
// num_weights x D fits int64.
void check_backward_tensors(const at::Tensor& grad_output, const at::Tensor& input,
                            const c10::SymInt& num_weights);

// ValueError unless weight's elements provably occupy distinct memory (max_norm writes rows in
// parallel); at::has_internal_overlap answers "too hard" for some overlapping layouts. Checked
// when sizes and strides are concrete.
void check_writable_without_overlap(const at::Tensor& weight);

// ---- each operator ---------------------------------------------------------------------------

void check_lookup_arguments(const at::Tensor& input, const at::Tensor& weight,
                            const CallOptions& options);
void check_backward_arguments(const at::Tensor& grad_output, const at::Tensor& input,
                              const c10::SymInt& num_weights, const CallOptions& options);
void check_scaled_backward_arguments(const at::Tensor& grad_output, const at::Tensor& input,
                                     const c10::SymInt& num_weights, const c10::SymInt& padding_row,
                                     double scale);
void check_renorm_arguments(const at::Tensor& weight, const at::Tensor& input, double max_norm,
                            double norm_type);
// A finite scale for scale_fwd / scale_bwd, and a defined tensor.
void check_scale_arguments(const at::Tensor& x, double scale, bool forward);

// The IndexError for a bad position (>= 0) found by any backend: the bad-index sentence of
// kernels/messages.h, naming the value, its position in the input and num_rows. Does nothing
// for -1.
void throw_if_bad_index(const at::Tensor& indices, int64_t bad_position, int64_t num_rows);

}  // namespace unit_scaling::detail
