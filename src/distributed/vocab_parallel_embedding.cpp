// Vocab-parallel unit-scaled embedding: validation, shard-local lookup + all-reduce, and the
// shard of the unit-scaled gradient with the global scale (see the public header).
#include <ATen/ATen.h>
#include <c10/util/Exception.h>
#include <torch/csrc/autograd/custom_function.h>
#include <unit_scaling/distributed/vocab_parallel_embedding.h>

#include <exception>
#include <torch/csrc/distributed/c10d/Types.hpp>

#include "embedding_checks.h"
#include "embedding_table.h"
#include "lookup_shape.h"
#include "operators.h"
#include "unit_scale.h"

namespace unit_scaling::distributed {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

// Forward: rows this rank owns (zeros elsewhere), summed over the group. Backward: the shard of
// the unit-scaled gradient; `backward_indices` maps positions this rank does not own (and
// padding positions) to the extra row `rows`, which is dropped.
class VocabParallelLookup : public torch::autograd::Function<VocabParallelLookup> {
 public:
  static at::Tensor forward(AutogradContext* ctx, const at::Tensor& weight,
                            const at::Tensor& local_indices, const at::Tensor& owned,
                            const at::Tensor& backward_indices, double scale,
                            c10::intrusive_ptr<c10d::ProcessGroup> group) {
    ctx->save_for_backward({backward_indices});
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["rows"] = weight.size(0);
    at::Tensor out;
    if (weight.size(0) == 0) {
      out =
          at::zeros(detail::lookup_shape(local_indices.sizes(), weight.size(1)), weight.options());
    } else {
      // The backend's own lookup (below autograd) of owned rows; other positions read row 0,
      // then are zeroed.
      at::AutoDispatchBelowADInplaceOrView guard;
      out = detail::lookup_op().call(local_indices.masked_fill(owned.logical_not(), 0), weight,
                                     std::nullopt, 1.0, std::nullopt);
      out.masked_fill_(owned.logical_not().unsqueeze(-1), 0);
    }
    std::vector<at::Tensor> tensors{out};
    group->allreduce(tensors)->wait();
    return out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    // The backward runs the kernel directly (not a differentiable operator), so a graph of it
    // would be silently wrong: refuse create_graph=true (the engine enables grad mode for it).
    TORCH_CHECK_NOT_IMPLEMENTED(
        !at::GradMode::is_enabled(),
        "unit_scaling VocabParallelEmbedding: double backward (create_graph=true) is not "
        "supported; the single-device unit_scaling::nn::Embedding supports it");
    const at::Tensor indices = ctx->get_saved_variables()[0];
    const int64_t rows = ctx->saved_data["rows"].toInt();
    const at::Tensor with_extra_row = detail::scaled_backward_op().call(
        grads[0], indices, rows + 1, /*padding_row=*/rows, ctx->saved_data["scale"].toDouble());
    return {with_extra_row.narrow(0, 0, rows),
            at::Tensor(),
            at::Tensor(),
            at::Tensor(),
            at::Tensor(),
            at::Tensor()};
  }
};

}  // namespace

ShardRange shard_range(int64_t num_rows, int64_t rank, int64_t world_size) {
  TORCH_CHECK_VALUE(world_size > 0 && rank >= 0 && rank < world_size,
                    "unit_scaling VocabParallelEmbedding: rank ", rank,
                    " is outside a group of size ", world_size);
  const int64_t base = num_rows / world_size;
  const int64_t extra = num_rows % world_size;
  const int64_t begin = rank * base + std::min(rank, extra);
  return {begin, begin + base + (rank < extra ? 1 : 0)};
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
  TORCH_CHECK_VALUE(options.process_group,
                    "unit_scaling VocabParallelEmbedding: process_group is null");
  const ShardRange range = shard();
  const int64_t padding_row =
      detail::check_module_options("VocabParallelEmbedding", options.embedding, options.grad_scale,
                                   {range.size(), options.embedding.embedding_dim()});
  weight = detail::register_table(*this, weight, options.embedding, range.size(),
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
  TORCH_CHECK_VALUE(v[0] == 0, "unit_scaling VocabParallelEmbedding: the input of another rank ",
                    "of the group failed validation (that rank raised the error); every rank ",
                    "must be given the same, valid input");
  TORCH_CHECK_VALUE(v[1] == -v[3] && v[2] == -v[4],
                    "unit_scaling VocabParallelEmbedding: ranks were given different inputs; ",
                    "every rank of the group must be given the same input (rank ",
                    options.process_group->getRank(), " has ", count, " indices)");
}

at::Tensor VocabParallelEmbeddingImpl::forward(const at::Tensor& input) {
  // Every rank validates its input, then one small all-reduce tells every rank whether all
  // inputs were valid and identical. A bad or differing input on any rank therefore raises on
  // every rank, before the lookup's collective, instead of leaving the others waiting in it.
  const int64_t num_rows = options.embedding.num_embeddings();
  int64_t padding_row = -1;
  at::Tensor indices;
  std::exception_ptr local_error;
  try {
    detail::check_input_and_weight(input, weight);
    detail::check_token_count(options.grad_scale.token_multiplier(),
                              options.grad_scale.num_tokens());
    detail::check_unit_scale(num_rows, input.numel(), options.grad_scale.token_multiplier(),
                             options.grad_scale.num_tokens(), weight.scalar_type());
    padding_row = detail::check_settings(detail::func_options_of(options.embedding), num_rows);
    // The index check against the global V is the backend's own: a lookup into a zero-width
    // table of V rows reads nothing but validates every index (IndexError naming it).
    detail::lookup_op().call(input, at::empty({num_rows, 0}, weight.options()), std::nullopt, 1.0,
                             std::nullopt);
    indices = input.contiguous().to(at::kLong);
  } catch (const c10::Error&) {
    local_error = std::current_exception();
  }
  check_inputs_agree(local_error ? at::Tensor() : indices, input.sizes());
  if (local_error) std::rethrow_exception(local_error);

  const ShardRange range = shard();
  const at::Tensor owned = indices.ge(range.begin).logical_and_(indices.lt(range.end));
  const at::Tensor local = indices - range.begin;
  if (options.embedding.max_norm()) {
    detail::renorm_op().call(weight, local.masked_select(owned), *options.embedding.max_norm(),
                             options.embedding.norm_type());
  }
  at::Tensor contributing = owned;
  if (padding_row >= 0) contributing = owned.logical_and(indices.ne(padding_row));
  const at::Tensor backward_indices = at::where(contributing, local, range.size());
  const double scale =
      detail::unit_scale(num_rows, indices.numel(), options.grad_scale.token_multiplier(),
                         options.grad_scale.num_tokens());
  return VocabParallelLookup::apply(weight, local, owned, backward_indices, scale,
                                    options.process_group);
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
  TORCH_CHECK_VALUE(full_weight.defined() && full_weight.dim() == 2,
                    "unit_scaling VocabParallelEmbedding: from_full's weight must be 2-D, got ",
                    full_weight.defined() ? full_weight.sizes() : at::IntArrayRef{});
  const ShardRange range = shard_range(full_weight.size(0), group->getRank(), group->getSize());
  options.num_embeddings(full_weight.size(0)).embedding_dim(full_weight.size(1));
  options._weight(full_weight.detach().narrow(0, range.begin, range.size()).clone());
  VocabParallelEmbeddingOptions parallel_options(options, std::move(group));
  parallel_options.grad_scale = grad_scale;
  return VocabParallelEmbedding(std::move(parallel_options));
}

}  // namespace unit_scaling::distributed
