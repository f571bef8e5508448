// The vocab-parallel core (vocab_shard.h): the split rule and the _vocab_shard_* operators.
#include <ATen/ATen.h>
#include <torch/library.h>

#include <cmath>

#include "call_options.h"
#include "embedding_checks.h"
#include "kernels/messages.h"
#include "lookup_shape.h"
#include "unit_scale.h"
#include "vocab_shard.h"

namespace unit_scaling::distributed::detail {

using namespace unit_scaling::detail;  // NOLINT(google-build-using-namespace): the op internals

std::pair<c10::SymInt, c10::SymInt> chunk_bounds(const c10::SymInt& num_rows, int64_t shard,
                                                 int64_t num_shards) {
  TORCH_CHECK_VALUE(num_shards > 0 && shard >= 0 && shard < num_shards, kernels::message_prefix(),
                    "shard ", shard, " is outside a group of ", num_shards, " shards");
  const c10::SymInt piece = (num_rows + (num_shards - 1)) / num_shards;
  const c10::SymInt begin = num_rows.min(piece * shard);
  return {begin, num_rows.min(begin + piece)};
}

namespace {

// Metadata checks shared by the real and the Meta kernels; `rows` is the local table's (or
// gradient's) row count, checked against the split rule when concrete.
void check_shard(const c10::SymInt& num_rows, int64_t shard, int64_t num_shards,
                 const c10::SymInt* rows, const char* what) {
  const auto [begin, end] = chunk_bounds(num_rows, shard, num_shards);
  const auto v = num_rows.maybe_as_int();
  TORCH_CHECK_VALUE(!v || *v >= 0, kernels::message_prefix(), "num_rows must be >= 0, got ", *v);
  if (rows == nullptr) return;
  const auto expected = (end - begin).maybe_as_int();
  const auto found = rows->maybe_as_int();
  TORCH_CHECK_VALUE(!expected || !found || *expected == *found, kernels::message_prefix(), what,
                    " has ", *found, " rows, but shard ", shard, " of ", num_shards, " of a ", *v,
                    "-row table has ", *expected, " (torch.chunk's split, as DTensor's Shard(0))");
}

void check_index_tensor_and_shard(const at::Tensor& input, const c10::SymInt& num_rows,
                                  int64_t shard, int64_t num_shards) {
  TORCH_CHECK_TYPE(input.defined(), kernels::message_prefix(), "input is an undefined tensor");
  check_input_and_weight(input, at::empty({0, 0}, input.options().dtype(at::kFloat)));
  check_shard(num_rows, shard, num_shards, nullptr, "");
}

// Each index value against the global row count: the backend's own check (IndexError, or the
// CUDA index-check policy's device assertion), by a lookup into a zero-width table of num_rows
// rows, which reads nothing.
void check_index_values(const at::Tensor& input, const c10::SymInt& num_rows) {
  call_lookup(input, at::empty_symint({num_rows, 0}, input.options().dtype(at::kFloat)));
}

// The local row of each position (int64), -1 where the shard does not own it. Indices valid.
at::Tensor local_rows(const at::Tensor& input, const c10::SymInt& num_rows, int64_t shard,
                      int64_t num_shards) {
  const auto [begin, end] = chunk_bounds(num_rows, shard, num_shards);
  const at::Tensor indices = input.to(at::kLong);
  const at::Tensor owned =
      indices.ge(begin.expect_int()).logical_and_(indices.lt(end.expect_int()));
  return at::where(owned, indices - begin.expect_int(), -1);
}

void check_lookup_metadata(const at::Tensor& input, const at::Tensor& weight,
                           const c10::SymInt& num_rows, int64_t shard, int64_t num_shards,
                           const CallOptions& options) {
  check_input_and_weight(input, weight);
  const c10::SymInt rows = weight.sym_size(0);
  check_shard(num_rows, shard, num_shards, &rows, "weight");
  check_call_options(options, num_rows, input.sym_numel(), weight.scalar_type());
}

void check_backward_metadata(const at::Tensor& grad_output, const at::Tensor& input,
                             const c10::SymInt& num_rows, int64_t shard, int64_t num_shards,
                             const std::optional<c10::SymInt>& num_lookups,
                             std::optional<double> scale, const CallOptions& options) {
  check_backward_tensors(grad_output, input, num_rows);
  check_shard(num_rows, shard, num_shards, nullptr, "");
  if (num_lookups) {
    const auto n = num_lookups->maybe_as_int();
    TORCH_CHECK_VALUE(!n || *n >= 0, kernels::message_prefix(), "num_lookups must be >= 0, got ",
                      *n);
  }
  // With an explicit scale, the token count's own scale is not the one used: not checked.
  if (scale) {
    check_table_options(options, num_rows);
    TORCH_CHECK_VALUE(std::isfinite(*scale), kernels::message_prefix(),
                      "scale must be finite, got scale=", *scale);
  } else {
    check_call_options(options, num_rows, num_lookups ? *num_lookups : input.sym_numel(),
                       grad_output.scalar_type());
  }
}

void check_renorm_metadata(const at::Tensor& weight, const at::Tensor& input,
                           const c10::SymInt& num_rows, int64_t shard, int64_t num_shards,
                           double max_norm, double norm_type) {
  check_input_and_weight(input, weight);
  const c10::SymInt rows = weight.sym_size(0);
  check_shard(num_rows, shard, num_shards, &rows, "weight");
  check_option_values(max_norm, norm_type, /*scale_grad_by_freq=*/false, /*sparse=*/false);
  check_writable_without_overlap(weight);
}

// ---- the kernels (any backend: they call the unit_scaling / ATen operators) ------------------

at::Tensor shard_indices(const at::Tensor& input, c10::SymInt num_rows, int64_t shard,
                         int64_t num_shards) {
  check_index_tensor_and_shard(input, num_rows, shard, num_shards);
  check_index_values(input, num_rows);
  return local_rows(input, num_rows, shard, num_shards);
}

at::Tensor shard_lookup(const at::Tensor& input, const at::Tensor& weight, c10::SymInt num_rows,
                        int64_t shard, int64_t num_shards, const CallOptions& options) {
  check_lookup_metadata(input, weight, num_rows, shard, num_shards, options);
  check_index_values(input, num_rows);
  if (weight.size(0) == 0) {
    return at::zeros(lookup_shape(input.sizes(), weight.size(1)), weight.options());
  }
  const at::Tensor local = local_rows(input, num_rows, shard, num_shards);
  const at::Tensor elsewhere = local.lt(0);
  // The positions this shard does not own read row 0, then are zeroed.
  at::Tensor out = call_lookup(local.clamp_min(0), weight);
  return out.masked_fill_(elsewhere.unsqueeze(-1), 0);
}

at::Tensor shard_backward(const at::Tensor& grad_output, const at::Tensor& input,
                          c10::SymInt num_rows, int64_t shard, int64_t num_shards,
                          const CallOptions& options, std::optional<c10::SymInt> num_lookups,
                          std::optional<double> scale) {
  check_backward_metadata(grad_output, input, num_rows, shard, num_shards, num_lookups, scale,
                          options);
  const int64_t rows = num_rows.expect_int();
  const double s =
      scale ? *scale
            : unit_scale(rows, num_lookups ? num_lookups->expect_int() : input.numel(), options);
  const int64_t padding = padding_row_or_none(options.padding_idx, rows);
  if (num_shards == 1) {  // the whole table: the backend checks the indices itself
    return scaled_backward_op().call(grad_output, input, rows, padding, s);
  }
  check_index_values(input, num_rows);
  const auto [begin, end] = chunk_bounds(num_rows, shard, num_shards);
  const int64_t size = (end - begin).expect_int();
  // The positions this shard does not own, and padding_idx's, go to an extra row `size`, which
  // is dropped.
  at::Tensor local = local_rows(input, num_rows, shard, num_shards);
  at::Tensor drop = local.lt(0);
  if (padding >= 0) drop.logical_or_(input.eq(padding));
  local.masked_fill_(drop, size);
  return scaled_backward_op().call(grad_output, local, size + 1, size, s).narrow(0, 0, size);
}

void shard_renorm(const at::Tensor& weight, const at::Tensor& input, c10::SymInt num_rows,
                  int64_t shard, int64_t num_shards, double max_norm, double norm_type) {
  check_renorm_metadata(weight, input, num_rows, shard, num_shards, max_norm, norm_type);
  const at::Tensor local = shard_indices(input, num_rows, shard, num_shards);
  // The referenced rows this shard owns, renormed in place by the device's own renorm (which
  // leaves every row alone for max_norm = inf).
  renorm_op().call(weight, local.masked_select(local.ge(0)), max_norm, norm_type);
}

// Below autograd and without recording: max_norm is not differentiated (as embedding_renorm_).
void shard_renorm_autograd(const at::Tensor& weight, const at::Tensor& input, c10::SymInt num_rows,
                           int64_t shard, int64_t num_shards, double max_norm, double norm_type) {
  check_renorm_metadata(weight, input, num_rows, shard, num_shards, max_norm, norm_type);
  at::AutoDispatchBelowADInplaceOrView guard;
  at::NoGradGuard no_grad;
  shard_renorm_op().call(weight, input, std::move(num_rows), shard, num_shards, max_norm,
                         norm_type);
}

// ---- Meta kernels: shapes only, symbolic sizes stay symbolic ----------------------------------

at::Tensor shard_indices_meta(const at::Tensor& input, c10::SymInt num_rows, int64_t shard,
                              int64_t num_shards) {
  check_index_tensor_and_shard(input, num_rows, shard, num_shards);
  return at::empty_symint(input.sym_sizes(), input.options().dtype(at::kLong));
}

at::Tensor shard_lookup_meta(const at::Tensor& input, const at::Tensor& weight,
                             c10::SymInt num_rows, int64_t shard, int64_t num_shards,
                             const CallOptions& options) {
  check_lookup_metadata(input, weight, num_rows, shard, num_shards, options);
  return at::empty_symint(lookup_shape(input.sym_sizes(), weight.sym_size(1)), weight.options());
}

at::Tensor shard_backward_meta(const at::Tensor& grad_output, const at::Tensor& input,
                               c10::SymInt num_rows, int64_t shard, int64_t num_shards,
                               const CallOptions& options, std::optional<c10::SymInt> num_lookups,
                               std::optional<double> scale) {
  check_backward_metadata(grad_output, input, num_rows, shard, num_shards, num_lookups, scale,
                          options);
  const auto [begin, end] = chunk_bounds(num_rows, shard, num_shards);
  return at::empty_symint({end - begin, grad_output.sym_size(-1)}, grad_output.options());
}

void shard_renorm_meta(const at::Tensor& weight, const at::Tensor& input, c10::SymInt num_rows,
                       int64_t shard, int64_t num_shards, double max_norm, double norm_type) {
  check_renorm_metadata(weight, input, num_rows, shard, num_shards, max_norm, norm_type);
}

}  // namespace

void check_shard_lookup(const at::Tensor& input, const at::Tensor& weight,
                        const c10::SymInt& num_rows, int64_t shard, int64_t num_shards,
                        const CallOptions& options) {
  check_lookup_metadata(input, weight, num_rows, shard, num_shards, options);
  check_index_values(input, num_rows);
}

}  // namespace unit_scaling::distributed::detail

TORCH_LIBRARY_FRAGMENT(unit_scaling, m) {
  using unit_scaling::detail::schema_with_options;
  m.def("_vocab_shard_indices(Tensor input, SymInt num_rows, int shard, int num_shards) -> Tensor");
  m.def(schema_with_options("_vocab_shard_lookup(Tensor input, Tensor weight, SymInt num_rows, "
                            "int shard, int num_shards, ",
                            ") -> Tensor")
            .c_str());
  m.def(schema_with_options("_vocab_shard_backward(Tensor grad_output, Tensor input, "
                            "SymInt num_rows, int shard, int num_shards, ",
                            ", SymInt? num_lookups=None, float? scale=None) -> Tensor")
            .c_str());
  m.def(
      "_vocab_shard_renorm_(Tensor(a!) weight, Tensor input, SymInt num_rows, int shard, "
      "int num_shards, float max_norm, float norm_type) -> ()");
}

// One registration list per dispatch key: the lists name the same operators on purpose.
TORCH_LIBRARY_IMPL(unit_scaling, CompositeExplicitAutograd, m) {
  namespace d = unit_scaling::distributed::detail;
  using unit_scaling::detail::kernel_with_options;
  m.impl("_vocab_shard_indices", &d::shard_indices);
  m.impl("_vocab_shard_lookup", kernel_with_options<&d::shard_lookup>());
  m.impl("_vocab_shard_backward", kernel_with_options<&d::shard_backward>());
  m.impl("_vocab_shard_renorm_", &d::shard_renorm);
}

TORCH_LIBRARY_IMPL(unit_scaling, Autograd, m) {
  m.impl("_vocab_shard_renorm_", &unit_scaling::distributed::detail::shard_renorm_autograd);
}

TORCH_LIBRARY_IMPL(unit_scaling, Meta, m) {
  namespace d = unit_scaling::distributed::detail;
  using unit_scaling::detail::kernel_with_options;
  m.impl("_vocab_shard_indices", &d::shard_indices_meta);
  m.impl("_vocab_shard_lookup", kernel_with_options<&d::shard_lookup_meta>());
  m.impl("_vocab_shard_backward", kernel_with_options<&d::shard_backward_meta>());
  m.impl("_vocab_shard_renorm_", &d::shard_renorm_meta);
}
