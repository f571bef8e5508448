// Vocab-parallel unit-scaled embedding on c10d (the Megatron-LM pattern): the V x D table is
// split by rows over a process group; each rank stores only its rows.
//
// Split rule: torch.chunk's, which DTensor's Shard(0) uses, so this module and a DTensor table
// (RowwiseParallel) hold the same rows on each rank: V rows over P ranks in pieces of
// ceil(V / P); rank r owns [min(V, r * piece), min(V, (r + 1) * piece)) -- the last ranks may
// hold fewer rows, or none (V = 10 over 4: 3, 3, 3, 1). (Before issue 26 the split was balanced.)
// The shard-local lookup and gradient are the operators that the DTensor rules call too
// (torch.ops.unit_scaling._vocab_shard_*). Every rank must be given the same input (a
// replicated batch, as in tensor parallelism).
//
// Forward: every rank validates all indices against the global V, then one small all-reduce
// (5 integers) checks that every rank's input was valid and that all are identical, so a bad or
// differing input on any rank raises on every rank (the rank at fault its own error, the others
// a ValueError) instead of leaving them waiting. Then each rank looks up the rows it owns, writes
// zeros elsewhere, and all-reduces (sum) the output: the single-device lookup exactly.
// Double backward (create_graph=true) is not supported: NotImplementedError.
//
// Example:
//   auto group = unit_scaling::distributed::make_gloo_group(store, rank, world);  // or NCCL
//   auto embed = unit_scaling::distributed::VocabParallelEmbedding::from_full(
//       table, group, torch::nn::EmbeddingOptions(V, D).padding_idx(0));
//   auto x = embed(tokens);  // collective: the same tokens on every rank
// Backward: the all-reduce's gradient is the identity for a replicated output gradient; each
// rank's weight gradient is its shard of the single-device unit-scaled gradient, with the
// GLOBAL scale s = sqrt(V / N) -- the shard's own row count would over-scale by sqrt(P).
// padding_idx is a global index (its owner drops those positions); with max_norm each rank
// renorms, in place, the referenced rows it owns.
#pragma once

#include <torch/nn/cloneable.h>
#include <torch/nn/options/embedding.h>
#include <torch/nn/pimpl.h>
#include <unit_scaling/export.h>
#include <unit_scaling/grad_scale.h>

#include <torch/csrc/distributed/c10d/ProcessGroup.hpp>

namespace unit_scaling::distributed {

struct ShardRange {
  int64_t begin, end;  // rows [begin, end) of the global table
  int64_t size() const { return end - begin; }
};

// The rows rank `rank` of `world_size` owns (see the split rule above).
UNIT_SCALING_API ShardRange shard_range(int64_t num_rows, int64_t rank, int64_t world_size);

struct VocabParallelEmbeddingOptions {
  VocabParallelEmbeddingOptions(torch::nn::EmbeddingOptions embedding,
                                c10::intrusive_ptr<c10d::ProcessGroup> process_group)
      : embedding(std::move(embedding)), process_group(std::move(process_group)) {}
  torch::nn::EmbeddingOptions embedding;  // global num_embeddings, padding_idx, max_norm, ...
  c10::intrusive_ptr<c10d::ProcessGroup> process_group;
  // The token count of the (global-V) scale under data parallelism / accumulation: the
  // multiplier counts data- and context-parallel replicas only, never this tensor-parallel
  // group (docs/SCALING.md).
  GradScaleOptions grad_scale;
};

class UNIT_SCALING_API VocabParallelEmbeddingImpl
    : public torch::nn::Cloneable<VocabParallelEmbeddingImpl> {
 public:
  // Registers `weight` (this rank's rows): options.embedding._weight if given (must be the
  // shard, shard_range().size() x D), else N(0, 1) with the global padding row zeroed.
  explicit VocabParallelEmbeddingImpl(VocabParallelEmbeddingOptions options_);

  void reset() override;
  void pretty_print(std::ostream& stream) const override;
  // Collective: every rank of the group must call it with the same input.
  at::Tensor forward(const at::Tensor& input);

  ShardRange shard() const;
  // Collective: the full V x D table rebuilt from every rank's shard.
  at::Tensor gather_full_weight();

  VocabParallelEmbeddingOptions options;
  at::Tensor weight;

 private:
  // Collective: ValueError unless every rank's input was valid and all are identical.
  void check_inputs_agree(const at::Tensor& valid_indices, at::IntArrayRef shape) const;
};

class UNIT_SCALING_API VocabParallelEmbedding
    : public torch::nn::ModuleHolder<VocabParallelEmbeddingImpl> {
 public:
  using torch::nn::ModuleHolder<VocabParallelEmbeddingImpl>::ModuleHolder;
  using Impl = VocabParallelEmbeddingImpl;

  // Shards an existing full table (same on every rank): this rank keeps a copy of its rows.
  static VocabParallelEmbedding from_full(const at::Tensor& full_weight,
                                          c10::intrusive_ptr<c10d::ProcessGroup> group,
                                          torch::nn::EmbeddingOptions options,
                                          GradScaleOptions grad_scale = {});
};

}  // namespace unit_scaling::distributed
