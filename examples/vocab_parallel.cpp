// Vocab-parallel unit-scaled embedding across processes (Gloo on CPU). Launch one process per
// rank with the usual variables -- MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE -- e.g. with
// scripts/launch_vocab_parallel.sh P, or any torchrun-style launcher, on one or many machines.
#include <torch/torch.h>
#include <unit_scaling/distributed/gloo_group.h>
#include <unit_scaling/distributed/vocab_parallel_embedding.h>

#include <cstdlib>
#include <iostream>
#include <string>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

namespace {

std::string env(const char* name, const char* fallback) {
  const char* value = std::getenv(name);
  return value && *value ? value : fallback;
}

}  // namespace

int main() {
  const int rank = std::stoi(env("RANK", "0"));
  const int world = std::stoi(env("WORLD_SIZE", "1"));
  c10d::TCPStoreOptions store_options;
  store_options.port = static_cast<uint16_t>(std::stoi(env("MASTER_PORT", "29511")));
  store_options.isServer = rank == 0;
  store_options.numWorkers = world;
  auto store = c10::make_intrusive<c10d::TCPStore>(env("MASTER_ADDR", "127.0.0.1"), store_options);
  auto group = unit_scaling::distributed::make_gloo_group(store, rank, world);

  // GPT-2's vocabulary, split by rows; the same batch on every rank (seeded identically).
  const int64_t vocab = 50257, dim = 64;
  torch::manual_seed(0);
  const auto tokens = torch::randint(0, vocab, {8, 256});
  const auto grad_out = torch::randn({8, 256, dim});
  torch::manual_seed(1 + rank);  // each rank initialises its own rows
  unit_scaling::distributed::VocabParallelEmbedding embedding(
      unit_scaling::distributed::VocabParallelEmbeddingOptions(
          torch::nn::EmbeddingOptions(vocab, dim).padding_idx(0), group));

  const auto out = embedding(tokens);
  out.backward(grad_out);
  const auto full_grad_std = [&] {
    std::vector<at::Tensor> tensors{embedding->weight.grad().square().sum().reshape({1})};
    group->allreduce(tensors)->wait();
    return std::sqrt(tensors[0].item<double>() / (vocab * dim));
  }();
  const auto shard = embedding->shard();
  std::cout << "rank " << rank << "/" << world << ": rows [" << shard.begin << ", " << shard.end
            << "), output std " << out.std().item<double>() << ", global weight-grad rms "
            << full_grad_std << " (unit scale: s = sqrt(V/N) = "
            << std::sqrt(static_cast<double>(vocab) / tokens.numel()) << ")" << std::endl;
  return 0;
}
