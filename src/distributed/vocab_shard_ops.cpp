// The vocab-parallel core (vocab_shard.h): the split rule and the _vocab_shard_* operators.
#include <ATen/ATen.h>
#include <torch/library.h>

#include "embedding_checks.h"
#include "lookup_shape.h"
#include "unit_scale.h"
#include "vocab_shard.h"

namespace unit_scaling::distributed::detail {

using namespace unit_scaling::detail;  // NOLINT(google-build-using-namespace): the op internals

std::pair<c10::SymInt, c10::SymInt> chunk_bounds(const c10::SymInt& num_rows, int64_t shard,
                                                 int64_t num_shards) {
  TORCH_CHECK_VALUE(num_shards > 0 && shard >= 0 && shard < num_shards,
                    "unit_scaling VocabParallelEmbedding: shard ", shard,
                    " is outside a group of size ", num_shards);
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
  TORCH_CHECK_VALUE(!v || *v >= 0, "unit_scaling embedding: num_rows must be >= 0, got ", *v);
  if (rows == nullptr) return;
  const auto expected = (end - begin).maybe_as_int();
  const auto found = rows->maybe_as_int();
  TORCH_CHECK_VALUE(!expected || !found || *expected == *found, "unit_scaling embedding: ", what,
                    " has ", *found, " rows, but shard ", shard, " of ", num_shards, " of a ", *v,
                    "-row table has ", *expected, " (torch.chunk's split, as DTensor's Shard(0))");
}

void check_index_tensor_and_shard(const at::Tensor& input, const c10::SymInt& num_rows,
                                  int64_t shard, int64_t num_shards) {
  TORCH_CHECK_TYPE(input.defined(), "unit_scaling embedding: input is an undefined tensor");
  check_input_and_weight(input, at::empty({0, 0}, input.options().dtype(at::kFloat)));
  check_shard(num_rows, shard, num_shards, nullptr, "");
}

// Each index value against the global row count: the backend's own check (IndexError, or the
// CUDA index-check policy's device assertion), by a lookup into a zero-width table of num_rows
// rows, which reads nothing.
void check_index_values(const at::Tensor& input, const c10::SymInt& num_rows) {
  lookup_op().call(input, at::empty_symint({num_rows, 0}, input.options().dtype(at::kFloat)),
                   std::nullopt, 1.0, std::nullopt);
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
                           const OptionalSymInt& padding_idx, double token_multiplier,
                           const OptionalSymInt& num_tokens) {
  check_input_and_weight(input, weight);
  const c10::SymInt rows = weight.sym_size(0);
  check_shard(num_rows, shard, num_shards, &rows, "weight");
  check_token_count(token_multiplier, num_tokens);
  check_padding_idx(padding_idx, num_rows);
  check_unit_scale(num_rows, input.sym_numel(), token_multiplier, num_tokens, weight.scalar_type());
}

void check_backward_metadata(const at::Tensor& grad_output, const at::Tensor& input,
                             const c10::SymInt& num_rows, int64_t shard, int64_t num_shards,
                             const OptionalSymInt& padding_idx, double token_multiplier,
                             const OptionalSymInt& num_tokens, const OptionalSymInt& num_lookups,
                             std::optional<double> scale) {
  check_backward_tensors(grad_output, input, num_rows);
  check_shard(num_rows, shard, num_shards, nullptr, "");
  check_token_count(token_multiplier, num_tokens);
  check_padding_idx(padding_idx, num_rows);
  if (num_lookups) {
    const auto n = num_lookups->maybe_as_int();
    TORCH_CHECK_VALUE(!n || *n >= 0, "unit_scaling embedding: num_lookups must be >= 0, got ", *n);
  }
  if (scale) {
    TORCH_CHECK_VALUE(std::isfinite(*scale), "unit_scaling embedding: scale must be finite, got ",
                      "scale=", *scale);
  } else {
    check_unit_scale(num_rows, num_lookups ? *num_lookups : input.sym_numel(), token_multiplier,
                     num_tokens, grad_output.scalar_type());
  }
}

// ---- the kernels (any backend: they call the unit_scaling / ATen operators) ------------------

at::Tensor shard_indices(const at::Tensor& input, c10::SymInt num_rows, int64_t shard,
                         int64_t num_shards) {
  check_index_tensor_and_shard(input, num_rows, shard, num_shards);
  check_index_values(input, num_rows);
  return local_rows(input, num_rows, shard, num_shards);
}

at::Tensor shard_lookup(const at::Tensor& input, const at::Tensor& weight, c10::SymInt num_rows,
                        int64_t shard, int64_t num_shards, OptionalSymInt padding_idx,
                        double token_multiplier, OptionalSymInt num_tokens) {
  check_lookup_metadata(input, weight, num_rows, shard, num_shards, padding_idx, token_multiplier,
                        num_tokens);
  check_index_values(input, num_rows);
  if (weight.size(0) == 0) {
    return at::zeros(lookup_shape(input.sizes(), weight.size(1)), weight.options());
  }
  const at::Tensor local = local_rows(input, num_rows, shard, num_shards);
  const at::Tensor elsewhere = local.lt(0);
  // The positions this shard does not own read row 0, then are zeroed.
  at::Tensor out = lookup_op().call(local.clamp_min(0), weight, std::nullopt, 1.0, std::nullopt);
  return out.masked_fill_(elsewhere.unsqueeze(-1), 0);
}

at::Tensor shard_backward(const at::Tensor& grad_output, const at::Tensor& input,
                          c10::SymInt num_rows, int64_t shard, int64_t num_shards,
                          OptionalSymInt padding_idx, double token_multiplier,
                          OptionalSymInt num_tokens, OptionalSymInt num_lookups,
                          std::optional<double> scale) {
  check_backward_metadata(grad_output, input, num_rows, shard, num_shards, padding_idx,
                          token_multiplier, num_tokens, num_lookups, scale);
  const int64_t rows = num_rows.expect_int();
  std::optional<int64_t> tokens;
  if (num_tokens) tokens = num_tokens->expect_int();
  const double s = scale ? *scale
                         : unit_scale(rows, num_lookups ? num_lookups->expect_int() : input.numel(),
                                      token_multiplier, tokens);
  const int64_t padding = padding_idx ? padding_row(padding_idx->expect_int(), rows) : -1;
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

// ---- Meta kernels: shapes only, symbolic sizes stay symbolic ----------------------------------

at::Tensor shard_indices_meta(const at::Tensor& input, c10::SymInt num_rows, int64_t shard,
                              int64_t num_shards) {
  check_index_tensor_and_shard(input, num_rows, shard, num_shards);
  return at::empty_symint(input.sym_sizes(), input.options().dtype(at::kLong));
}

at::Tensor shard_lookup_meta(const at::Tensor& input, const at::Tensor& weight,
                             c10::SymInt num_rows, int64_t shard, int64_t num_shards,
                             OptionalSymInt padding_idx, double token_multiplier,
                             OptionalSymInt num_tokens) {
  check_lookup_metadata(input, weight, num_rows, shard, num_shards, padding_idx, token_multiplier,
                        num_tokens);
  return at::empty_symint(lookup_shape(input.sym_sizes(), weight.sym_size(1)), weight.options());
}

at::Tensor shard_backward_meta(const at::Tensor& grad_output, const at::Tensor& input,
                               c10::SymInt num_rows, int64_t shard, int64_t num_shards,
                               OptionalSymInt padding_idx, double token_multiplier,
                               OptionalSymInt num_tokens, OptionalSymInt num_lookups,
                               std::optional<double> scale) {
  check_backward_metadata(grad_output, input, num_rows, shard, num_shards, padding_idx,
                          token_multiplier, num_tokens, num_lookups, scale);
  const auto [begin, end] = chunk_bounds(num_rows, shard, num_shards);
  return at::empty_symint({end - begin, grad_output.sym_size(-1)}, grad_output.options());
}

}  // namespace

void check_shard_lookup(const at::Tensor& input, const at::Tensor& weight, int64_t num_rows,
                        int64_t shard, int64_t num_shards, std::optional<int64_t> padding_idx,
                        double token_multiplier, std::optional<int64_t> num_tokens) {
  OptionalSymInt padding, tokens;
  if (padding_idx) padding = c10::SymInt(*padding_idx);
  if (num_tokens) tokens = c10::SymInt(*num_tokens);
  check_lookup_metadata(input, weight, num_rows, shard, num_shards, padding, token_multiplier,
                        tokens);
  check_index_values(input, num_rows);
}

}  // namespace unit_scaling::distributed::detail

TORCH_LIBRARY_FRAGMENT(unit_scaling, m) {
  m.def("_vocab_shard_indices(Tensor input, SymInt num_rows, int shard, int num_shards) -> Tensor");
  m.def(
      "_vocab_shard_lookup(Tensor input, Tensor weight, SymInt num_rows, int shard, "
      "int num_shards, SymInt? padding_idx=None, *, float token_multiplier=1.0, "
      "SymInt? num_tokens=None) -> Tensor");
  m.def(
      "_vocab_shard_backward(Tensor grad_output, Tensor input, SymInt num_rows, int shard, "
      "int num_shards, SymInt? padding_idx=None, *, float token_multiplier=1.0, "
      "SymInt? num_tokens=None, SymInt? num_lookups=None, float? scale=None) -> Tensor");
}

TORCH_LIBRARY_IMPL(unit_scaling, CompositeExplicitAutograd, m) {
  namespace d = unit_scaling::distributed::detail;
  m.impl("_vocab_shard_indices", &d::shard_indices);
  m.impl("_vocab_shard_lookup", &d::shard_lookup);
  m.impl("_vocab_shard_backward", &d::shard_backward);
}

TORCH_LIBRARY_IMPL(unit_scaling, Meta, m) {
  namespace d = unit_scaling::distributed::detail;
  m.impl("_vocab_shard_indices", &d::shard_indices_meta);
  m.impl("_vocab_shard_lookup", &d::shard_lookup_meta);
  m.impl("_vocab_shard_backward", &d::shard_backward_meta);
}
