// The vocab-parallel core: one split rule and the operators that both vocab-parallel paths call
// -- the C++ VocabParallelEmbedding and the Python DTensor rules (_dtensor.py) -- so a table
// sharded by either path has the same rows on each rank and the same checks, scale and renorm.
//
// Split rule (torch.chunk's, which DTensor's Shard(0) uses): V rows over P shards in pieces of
// ceil(V / P) rows; shard r owns [min(V, r * piece), min(V, (r + 1) * piece)). The last shards
// may be shorter or empty (V = 10 over 4: 3, 3, 3, 1 rows; V = 5 over 4: 2, 2, 1, 0).
//
// Operators (torch.ops.unit_scaling.*; CompositeExplicitAutograd kernels on any backend, Meta
// kernels for FakeTensor tracing; not differentiable: callers run them below autograd;
// <options>: the block of call_options.h):
//   _vocab_shard_indices(input, num_rows, shard, num_shards) -> int64 local row of each
//       position, -1 where this shard does not own it.
//   _vocab_shard_lookup(input, weight, num_rows, shard, num_shards, <options>) -> this shard's
//       part of the lookup (zeros elsewhere).
//   _vocab_shard_backward(grad_output, input, num_rows, shard, num_shards, <options>, *,
//       num_lookups?, scale?) -> this shard's rows of the unit-scaled gradient: scale =
//       unit_scale(num_rows, num_lookups (None: input.numel()), the token count) unless `scale`
//       is given; padding_idx's row is skipped.
//   _vocab_shard_renorm_(weight!, input, num_rows, shard, num_shards, max_norm, norm_type) ->
//       max_norm in place on the rows of this shard that input references.
// Every operator checks its arguments against the GLOBAL table of num_rows rows (the options,
// and each index value -- IndexError naming value, position and num_rows), and the local
// table's row count against the split rule, before anything else.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/SymInt.h>

#include <optional>
#include <utility>

#include "call_options.h"
#include "operators.h"

namespace unit_scaling::distributed::detail {

// [begin, end) of shard `shard` of `num_shards` under the split rule above (symbolic sizes stay
// symbolic). ValueError unless 0 <= shard < num_shards.
std::pair<c10::SymInt, c10::SymInt> chunk_bounds(const c10::SymInt& num_rows, int64_t shard,
                                                 int64_t num_shards);

using ShardIndicesSignature = at::Tensor(const at::Tensor&, c10::SymInt, int64_t, int64_t);
using ShardRenormSignature = void(const at::Tensor&, const at::Tensor&, c10::SymInt, int64_t,
                                  int64_t, double, double);

inline const c10::TypedOperatorHandle<ShardIndicesSignature>& shard_indices_op() {
  static const auto handle = unit_scaling::detail::find_operator<ShardIndicesSignature>(
      "unit_scaling::_vocab_shard_indices");
  return handle;
}
inline const c10::OperatorHandle& shard_lookup_op() {
  static const auto handle =
      unit_scaling::detail::find_operator("unit_scaling::_vocab_shard_lookup");
  return handle;
}
inline const c10::OperatorHandle& shard_backward_op() {
  static const auto handle =
      unit_scaling::detail::find_operator("unit_scaling::_vocab_shard_backward");
  return handle;
}
inline const c10::TypedOperatorHandle<ShardRenormSignature>& shard_renorm_op() {
  static const auto handle = unit_scaling::detail::find_operator<ShardRenormSignature>(
      "unit_scaling::_vocab_shard_renorm_");
  return handle;
}

// The lookup's checks without the lookup (VocabParallelEmbedding validates every rank's input
// before the ranks agree to run the collective).
void check_shard_lookup(const at::Tensor& input, const at::Tensor& weight,
                        const c10::SymInt& num_rows, int64_t shard, int64_t num_shards,
                        const unit_scaling::detail::CallOptions& options);

}  // namespace unit_scaling::distributed::detail
