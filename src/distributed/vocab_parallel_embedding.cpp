// Vocab-parallel unit-scaled embedding: validation, the agreement of the ranks, and the
// all-reduce around the shared vocab-parallel core (vocab_shard.h), which the DTensor rules call
// too (see the public header).
#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/custom_function.h>
#include <unit_scaling/distributed/vocab_parallel_embedding.h>

#include <exception>
#include <torch/csrc/distributed/c10d/Types.hpp>

#include "call_options.h"
#include "embedding_table.h"
#include "kernels/messages.h"
#include "vocab_shard.h"

namespace unit_scaling::distributed {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;
using unit_scaling::detail::call_options;
using unit_scaling::detail::call_with_options;
using unit_scaling::detail::call_with_options_and;
using unit_scaling::detail::CallOptions;
using unit_scaling::detail::options_from_ivalue;
using unit_scaling::detail::options_to_ivalue;

// Forward: this rank's part of the lookup (the shared core, vocab_shard.h), summed over the
// group. Backward: this rank's rows of the unit-scaled gradient (the core, global V and N).
class VocabParallelLookup : public torch::autograd::Function<VocabParallelLookup> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& weight, const at::Tensor& input,
                            const VocabParallelEmbeddingOptions& options) {
    const auto& group = options.process_group;
    const CallOptions call = call_options(options.embedding, options.grad_scale);
    ctx->save_for_backward({input});
    ctx->saved_data["num_rows"] = options.embedding.num_embeddings();
    ctx->saved_data["shard"] = static_cast<int64_t>(group->getRank());
    ctx->saved_data["num_shards"] = static_cast<int64_t>(group->getSize());
    ctx->saved_data["options"] = options_to_ivalue(call);
    at::Tensor out;
    {
      at::AutoDispatchBelowADInplaceOrView guard;
      out = call_with_options(detail::shard_lookup_op(), call, input, weight,
                              c10::SymInt(options.embedding.num_embeddings()),
                              static_cast<int64_t>(group->getRank()),
                              static_cast<int64_t>(group->getSize()))
                .toTensor();
    }
    std::vector<at::Tensor> tensors{out};
    group->allreduce(tensors)->wait();
    return out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    // The backward runs the kernel directly (not a differentiable operator), so a graph of it
    // would be silently wrong: refuse create_graph=true (the engine enables grad mode for it).
    TORCH_CHECK_NOT_IMPLEMENTED(!at::GradMode::is_enabled(), kernels::message_prefix(),
                                "VocabParallelEmbedding: double backward (create_graph=true) is "
                                "not supported; the single-device unit_scaling::nn::Embedding "
                                "supports it");
    const at::Tensor grad_weight =
        call_with_options_and(
            detail::shard_backward_op(), options_from_ivalue(ctx->saved_data["options"]),
            {/*num_lookups=*/c10::IValue(), /*scale=*/c10::IValue()}, grads[0],
            ctx->get_saved_variables()[0], ctx->saved_data["num_rows"].toSymInt(),
            ctx->saved_data["shard"].toInt(), ctx->saved_data["num_shards"].toInt())
            .toTensor();
    return {grad_weight, at::Tensor(), at::Tensor()};
  }
};

}  // namespace

ShardRange shard_range(int64_t num_rows, int64_t rank, int64_t world_size) {
  const auto [begin, end] = detail::chunk_bounds(num_rows, rank, world_size);
  return {begin.expect_int(), end.expect_int()};
}

VocabParallelEmbeddingImpl::VocabParallelEmbeddingImpl(VocabParallelEmbeddingOptions options_)
    : options(std::move(options_)) {
  reset();  // NOLINT(clang-analyzer-optin.cplusplus.VirtualCall)
}

ShardRange VocabParallelEmbeddingImpl::shard() const {
  return shard_range(options.embedding.num_embeddings(), options.process_group->getRank(),
                     options.process_group->getSize());
}

void VocabParallelEmbeddingImpl::reset() {
  TORCH_CHECK_VALUE(options.process_group, kernels::message_prefix(),
                    "VocabParallelEmbedding's process_group is null");
  const ShardRange range = shard();
  const int64_t padding_row = unit_scaling::detail::check_module_options(
      options.embedding, options.grad_scale, {range.size(), options.embedding.embedding_dim()});
  weight = unit_scaling::detail::register_table(*this, weight, options.embedding, range.size(),
                                                padding_row >= 0 ? padding_row - range.begin : -1);
}

void VocabParallelEmbeddingImpl::pretty_print(std::ostream& stream) const {
  const ShardRange range = shard();
  stream << "unit_scaling::distributed::VocabParallelEmbedding(num_embeddings="
         << options.embedding.num_embeddings()
         << ", embedding_dim=" << options.embedding.embedding_dim() << ", rows=[" << range.begin
         << ", " << range.end << "), rank=" << options.process_group->getRank() << "/"
         << options.process_group->getSize() << ")";
}

// One all-reduce (MAX) of five integers: [this rank failed, N, h, -N, -h], with h a
// position-weighted checksum of the indices (wrapping int64 arithmetic). After it every rank
// knows whether any rank failed and whether all N and h agree.
void VocabParallelEmbeddingImpl::check_inputs_agree(const at::Tensor& valid_indices,
                                                    at::IntArrayRef shape) const {
  int64_t count = 0;
  int64_t checksum = 0;
  if (valid_indices.defined()) {
    count = valid_indices.numel();
    const at::Tensor flat = valid_indices.reshape({-1});
    checksum = (flat * at::arange(1, count + 1, flat.options()) + flat).sum().item<int64_t>();
    for (const int64_t size : shape) checksum = checksum * 31 + size;
  }
  const auto code = static_cast<uint64_t>(checksum) >> 1;  // keep -h representable
  at::Tensor summary = at::tensor({valid_indices.defined() ? int64_t{0} : int64_t{1}, count,
                                   static_cast<int64_t>(code), -count, -static_cast<int64_t>(code)},
                                  at::kLong);
  std::vector<at::Tensor> tensors{summary};
  c10d::AllreduceOptions reduce;
  reduce.reduceOp = c10d::ReduceOp::MAX;
  options.process_group->allreduce(tensors, reduce)->wait();
  const auto v = summary.accessor<int64_t, 1>();
  if (!valid_indices.defined()) return;  // the caller rethrows its own error
  TORCH_CHECK_VALUE(v[0] == 0, kernels::message_prefix(),
                    "VocabParallelEmbedding: the input of another rank of the group failed "
                    "validation (that rank raised the error); every rank must be given the "
                    "same, valid input");
  TORCH_CHECK_VALUE(v[1] == -v[3] && v[2] == -v[4], kernels::message_prefix(),
                    "VocabParallelEmbedding: ranks were given different inputs; every rank of "
                    "the group must be given the same input (rank ",
                    options.process_group->getRank(), " has ", count, " indices)");
}

at::Tensor VocabParallelEmbeddingImpl::forward(const at::Tensor& input) {
  // Every rank validates its input (the core's checks, against the global V), then one small
  // all-reduce tells every rank whether all inputs were valid and identical. A bad or differing
  // input on any rank therefore raises on every rank, before the lookup's collective, instead of
  // leaving the others waiting in it.
  const auto& group = options.process_group;
  at::Tensor indices;
  std::exception_ptr local_error;
  try {
    detail::check_shard_lookup(input, weight, options.embedding.num_embeddings(), group->getRank(),
                               group->getSize(),
                               call_options(options.embedding, options.grad_scale));
    indices = input.contiguous().to(at::kLong);
  } catch (const c10::Error&) {
    local_error = std::current_exception();
  }
  check_inputs_agree(local_error ? at::Tensor() : indices, input.sizes());
  if (local_error) std::rethrow_exception(local_error);

  if (options.embedding.max_norm()) {  // the referenced rows this rank owns, in place
    detail::shard_renorm_op().call(weight, indices, options.embedding.num_embeddings(),
                                   group->getRank(), group->getSize(),
                                   *options.embedding.max_norm(), options.embedding.norm_type());
  }
  return VocabParallelLookup::apply(weight, indices, options);
}

at::Tensor VocabParallelEmbeddingImpl::gather_full_weight() {
  const auto& group = options.process_group;
  const int64_t world = group->getSize();
  const int64_t widest = shard_range(options.embedding.num_embeddings(), 0, world).size();
  const at::Tensor local = weight.detach();
  at::Tensor padded = at::zeros({widest, local.size(1)}, local.options());
  padded.narrow(0, 0, local.size(0)).copy_(local);
  std::vector<std::vector<at::Tensor>> gathered(1);
  for (int64_t r = 0; r < world; ++r) gathered[0].push_back(at::empty_like(padded));
  std::vector<at::Tensor> inputs{padded};
  group->allgather(gathered, inputs)->wait();
  std::vector<at::Tensor> shards;
  for (int64_t r = 0; r < world; ++r) {
    shards.push_back(gathered[0][r].narrow(
        0, 0, shard_range(options.embedding.num_embeddings(), r, world).size()));
  }
  return at::cat(shards, 0);
}

VocabParallelEmbedding VocabParallelEmbedding::from_full(
    const at::Tensor& full_weight, c10::intrusive_ptr<c10d::ProcessGroup> group,
    torch::nn::EmbeddingOptions options, GradScaleOptions grad_scale) {
  unit_scaling::detail::check_pretrained(full_weight, "from_full's full_weight");
  const ShardRange range = shard_range(full_weight.size(0), group->getRank(), group->getSize());
  options.num_embeddings(full_weight.size(0)).embedding_dim(full_weight.size(1));
  options._weight(full_weight.detach().narrow(0, range.begin, range.size()).clone());
  VocabParallelEmbeddingOptions parallel_options(options, std::move(group));
  parallel_options.grad_scale = grad_scale;
  return VocabParallelEmbedding(std::move(parallel_options));
}

}  // namespace unit_scaling::distributed
